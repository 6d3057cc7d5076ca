package host

import (
	"strings"
	"testing"
)

func TestParseRead(t *testing.T) {
	out := "==lbc config present\naGVsbG8K\n==lbc config end\n==lbc state absent\n==lbc addr\n" +
		`[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8},{"local":"::1","prefixlen":128}]},{"ifname":"eth0","addr_info":[{"local":"203.0.113.10","prefixlen":32}]}]` + "\n"
	l, err := ParseRead([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Config.Data) != "hello\n" || !l.Config.Exists || l.StateFile.Exists || l.State != nil {
		t.Errorf("files: %+v", l)
	}
	want := []string{"127.0.0.1/8 dev lo", "203.0.113.10/32 dev eth0", "::1/128 dev lo"}
	if strings.Join(l.Addresses, ",") != strings.Join(want, ",") {
		t.Errorf("addresses %q, want %q", l.Addresses, want)
	}
	for _, bad := range []string{
		"==lbc config present\naGVsbG8K\n", // cut short
		"junk\n==lbc addr\n[]\n",
		"==lbc config present\n!!!\n==lbc config end\n==lbc addr\n[]\n",
		"==lbc state present\nbm90IGpzb24=\n==lbc state end\n==lbc addr\n[]\n", // "not json"
	} {
		if _, err := ParseRead([]byte(bad)); err == nil {
			t.Errorf("ParseRead(%q): no error", bad)
		}
	}
}
