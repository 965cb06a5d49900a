package auth

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

func TestCheckPassword(t *testing.T) {
	pol := ferry.DefaultPolicy("o1")
	strict := ferry.DefaultPolicy("o1")
	strict.MinPasswordLen = 20
	for _, tc := range []struct {
		pw   string
		pol  *ferry.Policy
		want string // "" for accepted, else part of the error
	}{
		{"correct horse battery", pol, ""},
		{"a long enough passphrase", pol, ""},
		{"tram-oyster-violet-42", pol, ""},
		{"violet tram oyster", strict, "at least 20"},
		{"short", pol, "at least 12"},
		{"ab\x00defghijklmn", pol, "control"},
		{strings.Repeat("x", 1025) + "abcdef", pol, "longer"},
		{"Password2024!", pol, "easy to guess"},
		{"P@ssw0rd12345", pol, "easy to guess"},
		{"!!Welcome123456", pol, "easy to guess"},
		{"qwertyuiop123", pol, "easy to guess"},
		{"1qaz2wsx3edc", pol, "easy to guess"},
		{"abcdefghijklm", pol, "easy to guess"},
		{"123456789012", pol, "easy to guess"},
		{"314159265358979", pol, "easy to guess"}, // digits only
		{"aaaaaaaaaaaaaa", pol, "easy to guess"},
		{"abcabcabcabcabc", pol, "easy to guess"},
		{"passwordpassword", pol, "easy to guess"},
		{"welcomeadmin2024", pol, "easy to guess"},
		{"Letmein!!!!2025", pol, "easy to guess"},
		{"alice-2024-2025", pol, "easy to guess"}, // the account's name
		{"acmecorp2024!!", pol, "easy to guess"},  // the organisation
		{"Monkey12345678", pol, "easy to guess"},
	} {
		err := CheckPassword(tc.pol, "alice@acme.test", "AcmeCorp", tc.pw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.pw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want an error with %q", tc.pw, err, tc.want)
		case err != nil && ferry.KindOf(err) != ferry.Invalid:
			t.Errorf("%q: kind %v", tc.pw, ferry.KindOf(err))
		case err != nil && strings.Contains(err.Error(), tc.pw):
			t.Errorf("the error repeats the password: %v", err)
		}
	}
}

func TestWithinPolicy(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	sess := &ferry.Session{Stage: ferry.SessionFull, Created: now.Add(-2 * time.Hour), LastSeen: now.Add(-10 * time.Minute)}
	pol := ferry.DefaultPolicy("o")
	if !withinPolicy(sess, pol, now) {
		t.Fatal("default policy ends a 2-hour session idle for 10 minutes")
	}
	pol.SessionMax = time.Hour
	if withinPolicy(sess, pol, now) {
		t.Fatal("a 1-hour maximum does not end a 2-hour-old session")
	}
	pol.SessionMax, pol.SessionIdle = 12*time.Hour, 5*time.Minute
	if withinPolicy(sess, pol, now) {
		t.Fatal("a 5-minute idle timeout does not end a session idle for 10")
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs("10.0.0.0/8, 192.0.2.7,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v", got)
	}
	if got, err := ParseCIDRs("none"); err != nil || got != nil {
		t.Fatalf("none: %v %v", got, err)
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("bad range: %v", err)
	}
}
