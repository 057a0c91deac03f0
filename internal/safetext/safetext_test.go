package safetext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Raw reports the first byte offset of s a terminal could act on: a C0
// control other than the newlines allowed, DEL, a byte that is not UTF-8,
// a C1 control or a bidi control; -1 if none. Tests of every command use
// it on their output.
func raw(s string, newlines bool) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || escapedRune(r) && !(newlines && r == '\n') {
			return i
		}
		i += size
	}
	return -1
}

func TestField(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain /usr/bin/ls -la", "plain /usr/bin/ls -la"},
		{"日本語 café 🙂 \\x1b", "日本語 café 🙂 \\x1b"}, // UTF-8 and backslashes kept
		{"a\x1b[31mred\x1b[0m", `a\x1b[31mred\x1b[0m`},
		{"t\tn\nr\r\x00\x7f", `t\tn\nr\r\x00\x7f`},
		{"bad\xff\xfe", `bad\xff\xfe`},
		{"c1 \u009b31m \u0085", `c1 \u009b31m \u0085`},
		{"raw c1 \x9b", `raw c1 \x9b`},
		{"exe.\u202egpj \u2066x\u2069 \u200f\u061c", `exe.\u202egpj \u2066x\u2069 \u200f\u061c`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`},
		{"\xe2\x80", `\xe2\x80`}, // a truncated rune: each byte
	} {
		if got := Field(c.in); got != c.want {
			t.Errorf("Field(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := string(AppendField([]byte("x"), c.in)); got != "x"+c.want {
			t.Errorf("AppendField(%q) = %q", c.in, got)
		}
		if Clean(c.in) != (c.in == c.want) {
			t.Errorf("Clean(%q) = %v", c.in, Clean(c.in))
		}
	}
	if got := Lines("a\nb\x1b\r\n"); got != "a\nb\\x1b\\r\n" {
		t.Errorf("Lines kept or escaped the wrong bytes: %q", got)
	}
}

func TestJSON(t *testing.T) {
	v := map[string]any{"name": "a\x1b\u009b\u202e\x7f\xff\u2028 日本", "n": 1, "list": []string{"\u0085"}}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := JSON(b)
	if i := raw(string(got), true); i >= 0 {
		t.Fatalf("JSON left a raw control at %d: %q", i, got)
	}
	for _, want := range []string{`\u009b`, `\u202e`, `\u007f`, `\u0085`, "日本"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("JSON output lacks %s: %s", want, got)
		}
	}
	var a, b2 any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &b2); err != nil {
		t.Fatalf("JSON made invalid JSON: %v: %s", err, got)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b2)
	if string(ja) != string(jb) {
		t.Errorf("JSON changed the values:\n%s\n%s", ja, jb)
	}
	if plain := []byte(`{"a": "b"}`); &JSON(plain)[0] != &plain[0] {
		t.Error("JSON copied an ASCII document")
	}
}

func FuzzField(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]0;title\a", "\xff\u009b\u202e", "日本\n", "\u2066\u2069", "eight ok\x7fand more", "0123456789abcdef\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Field(s)
		if i := raw(got, false); i >= 0 {
			t.Fatalf("Field(%q) = %q: raw at %d", s, got, i)
		}
		if raw(s, false) < 0 && got != s {
			t.Fatalf("Field(%q) = %q changed a clean string", s, got)
		}
		if CleanBytes([]byte(s)) != (got == s) || Clean(s) != (got == s) {
			t.Fatalf("CleanBytes(%q) = %v, Clean %v, but Field gives %q", s, CleanBytes([]byte(s)), Clean(s), got)
		}
		if l := Lines(s); raw(l, true) >= 0 || strings.Count(l, "\n") != strings.Count(s, "\n") {
			t.Fatalf("Lines(%q) = %q", s, l)
		}
		// JSON: what encoding/json wrote decodes to the same after JSON.
		b, _ := json.Marshal(s)
		var want, back string
		json.Unmarshal(b, &want)
		if err := json.Unmarshal(JSON(b), &back); err != nil || back != want || raw(string(JSON(b)), false) >= 0 {
			t.Fatalf("JSON(%s) = %s: %v, %q want %q", b, JSON(b), err, back, want)
		}
	})
}

func TestCleanBytesAllocates(t *testing.T) {
	line := []byte("2026-01-02T03:04:05.000000000Z [001] 100 bash exec: filename=/usr/bin/ls 日本 café")
	if !CleanBytes(line) || CleanBytes([]byte("x\u202e")) || CleanBytes([]byte("x\xff")) {
		t.Fatal("CleanBytes is wrong")
	}
	if n := testing.AllocsPerRun(100, func() { CleanBytes(line) }); n != 0 {
		t.Errorf("CleanBytes allocates %v times", n)
	}
}
