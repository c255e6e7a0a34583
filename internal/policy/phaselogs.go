package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/run"
)

// phaseLogCap is the most of one phase's log a webhook payload gets (its
// end); less when the payload would pass notify.MaxBody.
const phaseLogCap = 64 << 10

// phaseLogFloor is the smallest cap tried before a placeholder gets only
// a note that the log does not fit.
const phaseLogFloor = 1 << 10

// logPlaceholder is Spacelift's placeholder of a phase's log in a string
// value of a webhook payload: spacelift::logs::<phase>.
var logPlaceholder = regexp.MustCompile(`spacelift::logs::([a-z]+)`)

// logPhases are the phases a placeholder may name: Spacelift's four and
// Gantry's performing (a task's command).
var logPhases = map[string]string{
	"preparing": run.Preparing, "initializing": run.Initializing, "planning": run.Planning,
	"applying": run.Applying, "performing": run.Performing,
}

// phaseText is the text a placeholder of phase stands for, its log cut to
// its last max bytes.
type phaseText func(phase string, max int) (string, error)

// withPhaseLogs replaces the log placeholders in the string values of the
// webhook messages' payloads (not in keys) with the logs of the run's
// phases; a message whose payload then passes the size limit fails to
// deliver saying so, as any other.
func (s *Service) withPhaseLogs(ctx context.Context, r run.Run, msgs []notify.Message) error {
	for i, m := range msgs {
		if m.Kind != notify.KindWebhook || !bytes.Contains(m.Payload, []byte("spacelift::logs::")) {
			continue
		}
		p, err := fillPhaseLogs(m.Payload, func(phase string, max int) (string, error) {
			return s.phaseLogText(ctx, r.ID, phase, max)
		})
		if err != nil {
			return err
		}
		msgs[i].Payload = p
	}
	return nil
}

// phaseLogText is the log of a run's phase for a placeholder: its end,
// after a note of what was left out, or a note that it is not known.
func (s *Service) phaseLogText(ctx context.Context, runID, phase string, max int) (string, error) {
	data, omitted, ok, err := s.runs.PhaseLog(ctx, runID, logPhases[phase], max)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("[gantry] The %s log of this run is not known: the worker that ran it did not say where the phase began (upgrade the worker). The whole log: GET /api/v1/runs/%s/logs\n", phase, runID), nil
	}
	if omitted == 0 {
		return string(data), nil
	}
	// Start at a whole character, and at a line when one starts near.
	for len(data) > 0 && !utf8.RuneStart(data[0]) {
		data, omitted = data[1:], omitted+1
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 && i < 1024 && i+1 < len(data) {
		data, omitted = data[i+1:], omitted+int64(i+1)
	}
	return fmt.Sprintf("[gantry] The first %d bytes of the %s log are left out here; the whole log: GET /api/v1/runs/%s/logs\n", omitted, phase, runID) + string(data), nil
}

// fillPhaseLogs replaces the placeholders of phase logs in the string
// values of a JSON payload, wherever they are in a value (as Spacelift
// does); keys and unknown phases are left as they are. Each phase's log
// is cut to its last phaseLogCap bytes, and to less, halving, until the
// payload fits notify.MaxBody; past phaseLogFloor the placeholders get a
// note instead.
func fillPhaseLogs(payload []byte, text phaseText) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return payload, nil // not JSON: its delivery fails saying so
	}
	for limit := phaseLogCap; ; limit /= 2 {
		cache := map[string]string{}
		get := func(phase string) (string, error) {
			if t, ok := cache[phase]; ok {
				return t, nil
			}
			if limit < phaseLogFloor {
				cache[phase] = fmt.Sprintf("[gantry] The %s log does not fit in this webhook's payload (at most %d bytes).\n", phase, notify.MaxBody)
				return cache[phase], nil
			}
			t, err := text(phase, limit)
			cache[phase] = t
			return t, err
		}
		out, err := replaceLogs(doc, get)
		if err != nil {
			return nil, err
		}
		b, err := marshalPayload(out)
		if err != nil {
			return nil, err
		}
		if len(b) <= notify.MaxBody || limit < phaseLogFloor {
			return b, nil
		}
	}
}

// replaceLogs copies v with the placeholders in its strings replaced.
func replaceLogs(v any, get func(phase string) (string, error)) (any, error) {
	switch v := v.(type) {
	case string:
		var err error
		out := logPlaceholder.ReplaceAllStringFunc(v, func(m string) string {
			phase := strings.TrimPrefix(m, "spacelift::logs::")
			if _, ok := logPhases[phase]; !ok || err != nil {
				return m
			}
			var t string
			t, err = get(phase)
			return t
		})
		return out, err
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := replaceLogs(e, get)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := replaceLogs(e, get)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	return v, nil
}

// marshalPayload is json.Marshal without escaping <, > and & (a log's
// text reads as it is).
func marshalPayload(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
