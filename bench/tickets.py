"""Instruction data nobody in Tuneboard tuned for: customer messages routed to one of eight teams, as chat JSONL.

The acceptance check of instruction tuning (bench/bench_sft.py) trains on data the defaults were not
chosen on: the chat shape hosted fine-tuning APIs take (a system turn, the customer's message, the
team as the assistant's answer), words and phrasings unlike the news headlines, and answers that
are short phrases with capitals and a slash. Seeded, so every run sees the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TEAMS = {
    "Billing": (
        ["I was charged {twice} for my {plan} plan", "Why is my {month} invoice higher than usual?",
         "The refund for my {plan} subscription never arrived", "My card was declined but the money left my account",
         "Can I get a VAT invoice for the {plan} plan?", "You billed me after I downgraded to {plan}"],
    ),
    "Shipping": (
        ["My {item} has not arrived after {days} days", "The tracking number for my {item} does not work",
         "Can you deliver the {item} to my office instead?", "The courier left my {item} at the wrong address",
         "How long does shipping a {item} to {country} take?", "My parcel with the {item} is stuck in customs"],
    ),
    "Returns": (
        ["I want to send back the {item} I bought {days} days ago", "How do I return a {item} that does not fit?",
         "The {item} arrived broken, can I exchange it?", "Do I pay postage to return the {item}?",
         "I returned the {item} but you have not confirmed it", "Can I swap the {item} for another colour?"],
    ),
    "Account access": (
        ["I cannot log in since I changed my {device}", "The password reset email never comes",
         "My account is locked after too many attempts", "Two-factor codes do not reach my {device}",
         "Someone else may have used my account from {country}", "I want to change the email on my account"],
    ),
    "Technical support": (
        ["The app crashes when I open it on my {device}", "Sync stopped working on my {device} yesterday",
         "I get error {code} when I upload a file", "The {feature} feature is very slow today",
         "Notifications no longer show up on my {device}", "The export to PDF produces a blank page"],
    ),
    "Sales": (
        ["Do you offer a discount for {seats} seats?", "What is the difference between {plan} and Enterprise?",
         "Can we get a quote for {seats} licences?", "Is there a trial of the {plan} plan for teams?",
         "We want to buy the {feature} add-on for our company", "Do you sell to schools in {country}?"],
    ),
    "Cancellation": (
        ["Please cancel my {plan} subscription", "I want to close my account for good",
         "How do I stop the automatic renewal of {plan}?", "Cancel my order of the {item} before it ships",
         "I no longer need the {feature} add-on, please remove it", "End my membership at the end of {month}"],
    ),
    "Feedback": (
        ["I love the new {feature} feature, great work", "Your support agent was very helpful last {month}",
         "It would be nice if the {feature} feature worked offline", "The new design is confusing, bring back the old one",
         "Just wanted to say the {item} is excellent", "Please add a dark mode to the {device} app"],
    ),
}

SLOTS = {
    "twice": ["twice", "three times", "double"],
    "plan": ["Basic", "Pro", "Premium", "Family", "Starter"],
    "month": ["January", "March", "May", "July", "September", "November"],
    "item": ["jacket", "coffee machine", "phone case", "desk lamp", "backpack", "blender", "monitor", "pair of boots"],
    "days": ["5", "10", "12", "14", "20", "30"],
    "country": ["Canada", "Germany", "Japan", "Brazil", "Kenya", "Norway"],
    "device": ["iPhone", "Android phone", "laptop", "tablet", "work computer"],
    "code": ["500", "403", "E12", "0x80070005", "timeout"],
    "feature": ["calendar", "search", "reports", "team chat", "backup"],
    "seats": ["25", "50", "100", "250"],
}

OPENINGS = ["", "Hi, ", "Hello team, ", "Urgent: ", "Good morning. ", "Hey, ", "Dear support, "]
CLOSINGS = ["", " Thanks.", " Please help.", " Order {order}.", " Customer number {order}.", " Regards, {name}.",
            " Can someone get back to me today?"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Felix", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Luis"]

SYSTEM = "You route customer messages. Reply with the name of the team that should handle the message."
USER = "Teams: {teams}.\n\nMessage: {message}"


def generate_tickets(rows: int, seed: int = 0) -> list[dict]:
    """Chats {"messages": [system, user, assistant]} with balanced teams."""
    rng = np.random.default_rng(seed)
    names = list(TEAMS)
    teams = ", ".join(names)
    chats = []
    for i in rng.permutation(np.arange(rows) % len(names)):
        team = names[int(i)]
        template = TEAMS[team][0][int(rng.integers(len(TEAMS[team][0])))]
        fill = {slot: words[int(rng.integers(len(words)))] for slot, words in SLOTS.items()}
        opening = OPENINGS[int(rng.integers(len(OPENINGS)))]
        closing = CLOSINGS[int(rng.integers(len(CLOSINGS)))].format(
            order=int(rng.integers(10_000, 99_999)), name=NAMES[int(rng.integers(len(NAMES)))])
        body = template.format(**fill)
        message = opening + (body[0].lower() + body[1:] if opening and not body.startswith("I ") else body) + closing
        chats.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(teams=teams, message=message)},
            {"role": "assistant", "content": team},
        ]})
    return chats


def write_tickets(path: Path, rows: int, seed: int) -> Path:
    path.write_text("".join(json.dumps(chat) + "\n" for chat in generate_tickets(rows, seed)), encoding="utf-8")
    return path
