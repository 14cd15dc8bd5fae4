package agent

import (
	"strings"
	"testing"
)

func TestProbeAnswer(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"not ready: the cache is still warming\n", "not ready: the cache is still warming"},
		{"first line\nsecond line\n", "first line"},
		{"  padded  ", "padded"},
		{"", ""},
		{"\x00\x01binary", ""},
		{"\xff\xfe", ""},
		{strings.Repeat("x", 300), strings.Repeat("x", 200) + "..."},
	} {
		if got := probeAnswer([]byte(c.body)); got != c.want {
			t.Errorf("probeAnswer(%q) = %q, want %q", c.body, got, c.want)
		}
	}
}
