package agent

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"/bin/check --quick":          {"/bin/check", "--quick"},
		"  a\tb\n c  ":                {"a", "b", "c"},
		`sh -c 'test -f /run/ready'`:  {"sh", "-c", "test -f /run/ready"},
		`echo "a \"b\" \$c \x" 'd\e'`: {"echo", `a "b" $c \x`, `d\e`},
		`a\ b c\'d`:                   {"a b", "c'd"},
		`'' "" x`:                     {"", "", "x"},
		`pre'quoted'"joined"post`:     {"prequotedjoinedpost"},
		`'it'\''s'`:                   {"it's"},
		"":                            nil,
	} {
		got, err := SplitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `"escaped end\"`, `trailing\`} {
		if got, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", bad, got)
		}
	}
}

// TestQuoteCommand: what QuoteCommand writes, SplitCommand and a real shell both
// split back into the words it was given.
func TestQuoteCommand(t *testing.T) {
	words := []string{"plain", "with space", "", "it's", `"double"`, `back\slash`, "$HOME", "`tick`", "tab\there", "new\nline", "*", "a=b,c:d@e%f+g/h.i-j_k"}
	line := QuoteCommand(words)
	got, err := SplitCommand(line)
	if err != nil || !slices.Equal(got, words) {
		t.Fatalf("SplitCommand(QuoteCommand(%q)) = %q, %v", words, got, err)
	}
	if !strings.HasPrefix(line, "plain 'with space' '' ") {
		t.Errorf("QuoteCommand = %s; want words that need no quotes left as they are", line)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to compare with")
	}
	out, err := exec.Command(sh, "-c", `set -- `+line+`; for w in "$@"; do printf '%s\0' "$w"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if shWords := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !slices.Equal(shWords, words) {
		t.Errorf("sh splits %s into %q, want %q", line, shWords, words)
	}
}
