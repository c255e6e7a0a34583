package notify

import (
	"bytes"
	"encoding/json"
	"strings"
)

// A Teams message is a message activity with one Adaptive Card attachment,
// the shape Microsoft Teams incoming webhooks and the Workflows (Power
// Automate) "post to a channel when a webhook request is received" trigger
// accept. The types keep the fields in the documented order.
type teamsMessage struct {
	Type        string            `json:"type"` // "message"
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"` // always null
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []teamsTextBlock `json:"body"`
	Actions []teamsAction    `json:"actions,omitempty"`
}

type teamsTextBlock struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Weight string `json:"weight,omitempty"`
	Size   string `json:"size,omitempty"`
	Wrap   bool   `json:"wrap"`
}

type teamsAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Adaptive Card constants.
const (
	adaptiveCardContentType = "application/vnd.microsoft.card.adaptive"
	adaptiveCardSchema      = "http://adaptivecards.io/schemas/adaptive-card.json"
	adaptiveCardVersion     = "1.4"
)

// teamsCardJSON returns the body of a Teams message: a card with the title
// (when not empty) in bold, the message, and an "Open run" button when
// runURL is an absolute http(s) URL.
func teamsCardJSON(title, message, runURL string) []byte {
	card := teamsCard{Schema: adaptiveCardSchema, Type: "AdaptiveCard", Version: adaptiveCardVersion, Body: []teamsTextBlock{}}
	if strings.TrimSpace(title) != "" {
		card.Body = append(card.Body, teamsTextBlock{Type: "TextBlock", Text: title, Weight: "Bolder", Size: "Medium", Wrap: true})
	}
	card.Body = append(card.Body, teamsTextBlock{Type: "TextBlock", Text: message, Wrap: true})
	if runURL != "" && checkURL(runURL) == nil {
		card.Actions = []teamsAction{{Type: "Action.OpenUrl", Title: "Open run", URL: runURL}}
	}
	return marshalPlain(teamsMessage{Type: "message", Attachments: []teamsAttachment{{ContentType: adaptiveCardContentType, Content: card}}})
}

// marshalPlain is json.Marshal without escaping <, > and &, so that
// bodies read well in `gantry notification deliveries` (still valid JSON).
// It is for values that cannot fail to encode (strings, slices, structs).
func marshalPlain(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
