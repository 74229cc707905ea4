// Renders chats through an Ollama Modelfile's TEMPLATE the way Ollama's server does, with Go's text/template
// (the engine Ollama runs templates with): the Modelfile's SYSTEM goes first when a chat has no system turn,
// consecutive turns of one role are joined, and the template gets System, Messages, Tools and Response.
// Usage: go run ollama_template.go Modelfile CHATS.json OUT.json
// CHATS.json: [{"messages": [{"role", "content"}...]}, ...]; OUT.json: ["rendered prompt", ...]
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Chat struct {
	Messages []Message `json:"messages"`
}

var tripleQuoted = `(?s)%s\s+"""(.*?)"""`

func field(modelfile, name string) string {
	found := regexp.MustCompile(strings.Replace(tripleQuoted, "%s", name, 1)).FindStringSubmatch(modelfile)
	if found == nil {
		return ""
	}
	return found[1]
}

func collate(messages []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range messages {
		message := messages[i]
		if message.Role == "system" {
			system = append(system, message.Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == message.Role {
			collated[len(collated)-1].Content += "\n\n" + message.Content
		} else {
			collated = append(collated, &message)
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	modelfile, err := os.ReadFile(os.Args[1])
	check(err)
	text := string(modelfile)
	parsed, err := template.New("Modelfile").Parse(field(text, "TEMPLATE"))
	check(err)
	defaultSystem := field(text, "SYSTEM")
	raw, err := os.ReadFile(os.Args[2])
	check(err)
	var chats []Chat
	check(json.Unmarshal(raw, &chats))
	rendered := []string{}
	for _, chat := range chats {
		messages := chat.Messages
		if defaultSystem != "" && (len(messages) == 0 || messages[0].Role != "system") {
			messages = append([]Message{{Role: "system", Content: defaultSystem}}, messages...)
		}
		system, collated := collate(messages)
		var out bytes.Buffer
		check(parsed.Execute(&out, map[string]any{"System": system, "Messages": collated, "Tools": nil,
			"Response": ""}))
		rendered = append(rendered, out.String())
	}
	encoded, err := json.Marshal(rendered)
	check(err)
	check(os.WriteFile(os.Args[3], encoded, 0o644))
}

func check(err error) {
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
