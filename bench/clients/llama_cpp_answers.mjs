// llama.cpp's greedy answers to chats, from a GGUF file, two ways:
//   chat:     the chat template stored in the GGUF, applied by llama.cpp's side (a Jinja wrapper);
//   rendered: the prompt text transformers rendered, tokenized and continued by llama.cpp.
// Usage: node llama_cpp_answers.mjs MODEL.gguf CHATS.json OUT.json
// CHATS.json: [{"messages": [{"role", "content"}...], "rendered": "..."}, ...]
// OUT.json:   {"chat": [...], "rendered": [...], "template_found": bool, "seconds": n}
import {readFileSync, writeFileSync} from "node:fs";
import {getLlama, JinjaTemplateChatWrapper, LlamaChat, LlamaCompletion, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, chatsPath, outPath, maxTokensArg] = process.argv.slice(2);
const maxTokens = Number(maxTokensArg || 16);
const chats = JSON.parse(readFileSync(chatsPath, "utf8"));
const started = Date.now();
// build: "never" keeps this offline: only the prebuilt CPU binary that npm installed is used.
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const template = model.fileInfo.metadata?.tokenizer?.chat_template;
// One thread per core: node-llama-cpp's default (twice the cores here) makes llama.cpp's spinning workers
// fight over 2 cores, and 16 tokens took 65 s instead of 0.2 s.
const context = await model.createContext({contextSize: 2048, sequences: 1, threads: llama.cpuMathCores});
const sequence = context.getSequence();
// The end-of-turn token as text ("<|im_end|>"): special tokens detokenize to "" unless asked for.
const endOfTurn = model.detokenize([model.tokens.eos], true);

const roles = {system: "system", user: "user", assistant: "model"};
function history(messages) {
  return messages.map((m) => roles[m.role] === "model"
    ? {type: "model", response: [m.content]}
    : {type: roles[m.role], text: m.content});
}

const chatAnswers = [];
if (template) {
  const chat = new LlamaChat({contextSequence: sequence, autoDisposeSequence: false,
    chatWrapper: new JinjaTemplateChatWrapper({template})});
  for (const item of chats) {
    const reply = await chat.generateResponse([...history(item.messages), {type: "model", response: []}],
      {maxTokens, temperature: 0});
    chatAnswers.push(reply.response.trim());
    await sequence.clearHistory();
  }
  chat.dispose();
}

const renderedAnswers = [];
const completion = new LlamaCompletion({contextSequence: sequence, autoDisposeSequence: false});
for (const item of chats) {
  // Tokenized with special tokens read as such ("<|im_start|>" is one token), as a server given a rendered
  // prompt does; a plain string would spell them out as text.
  const text = await completion.generateCompletion(model.tokenize(item.rendered, true), {maxTokens, temperature: 0,
    customStopTriggers: endOfTurn ? [endOfTurn] : undefined});
  renderedAnswers.push((endOfTurn ? text.split(endOfTurn)[0] : text).trim());
  await sequence.clearHistory();
}
writeFileSync(outPath, JSON.stringify({chat: chatAnswers, rendered: renderedAnswers, template_found: Boolean(template),
  seconds: (Date.now() - started) / 1000}));
