package schema

import (
	"strings"
	"testing"
)

// TestRedactKeyMaterial: a message never shows PEM text or a private key,
// quoted, unterminated or bare, and keeps what else it says.
func TestRedactKeyMaterial(t *testing.T) {
	key := "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----"
	for _, msg := range []string{
		`invalid value "` + key + `": must be a certificate name`,
		`a "b" then "` + key,
		`bare ` + strings.ReplaceAll(key, `\n`, " "),
	} {
		got := clean(msg)
		if strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "MIIEvQ") || !strings.Contains(got, "not shown") {
			t.Errorf("clean(%q) = %q", msg, got)
		}
	}
	if got := clean(`invalid value "x": must be "y"`); got != `invalid value "x": must be "y"` {
		t.Errorf("a message without key material changed: %q", got)
	}
}
