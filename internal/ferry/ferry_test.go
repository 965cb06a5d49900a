package ferry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"}, {"/", "/"}, {"a", "/a"}, {"/a/b/", "/a/b"}, {"/finance/2026/report.pdf", "/finance/2026/report.pdf"},
		{"/ünïcødé/名前.txt", "/ünïcødé/名前.txt"}, {"/a b/c-d_e.f", "/a b/c-d_e.f"}, {"/..a/b..", "/..a/b.."},
	} {
		if got, err := CleanPath(tc.in); err != nil || got != tc.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"/a/../b", "..", "/a/.", "/a//b", "//a", "/a\x00b", "/a\nb", "/a\x7fb", "/a\u0085b", `/a\b`,
		"/" + strings.Repeat("a", 256), "/" + strings.Repeat("a/", 2049), "/\xff",
	} {
		if _, err := CleanPath(in); KindOf(err) != Invalid {
			t.Errorf("CleanPath(%q): err = %v, want Invalid", in, err)
		}
	}
}

// FuzzCleanPath checks that whatever CleanPath accepts is canonical, stays
// inside the root and is stable.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/a/b", "../x", "/a/./b", "a//b", "/\x00", "/é/ü", "/a/b/", "%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := CleanPath(in)
		if err != nil {
			if KindOf(err) != Invalid {
				t.Fatalf("CleanPath(%q): kind %v", in, KindOf(err))
			}
			return
		}
		if !strings.HasPrefix(out, "/") || len(out) > MaxPathLen || !utf8.ValidString(out) {
			t.Fatalf("CleanPath(%q) = %q", in, out)
		}
		for _, el := range SplitPath(out) {
			if el == "" || el == "." || el == ".." || strings.ContainsAny(el, "\x00\\") {
				t.Fatalf("CleanPath(%q) = %q has element %q", in, out, el)
			}
		}
		if again, err := CleanPath(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
	})
}

func TestErrors(t *testing.T) {
	inner := E("db.Get", NotExist, "no row", fmt.Errorf("sql: no rows"))
	outer := E("transfer.Open", inner)
	if KindOf(outer) != NotExist {
		t.Fatalf("kind not propagated: %v", KindOf(outer))
	}
	if Message(outer) != "no row" {
		t.Fatalf("message %q", Message(outer))
	}
	if Message(errors.New("secret internal detail")) != "internal error" {
		t.Fatal("plain error message leaked")
	}
	if !strings.Contains(outer.Error(), "sql: no rows") {
		t.Fatal("cause missing from log text")
	}
}

func TestPerms(t *testing.T) {
	p, err := ParsePerms("list, READ,write")
	if err != nil || p != PermList|PermRead|PermWrite || p.String() != "list,read,write" {
		t.Fatalf("ParsePerms = %v %v", p, err)
	}
	if !p.Has(PermRead) || p.Has(PermDelete) {
		t.Fatal("Has")
	}
	for _, bad := range []string{"", "root", "read,exec"} {
		if _, err := ParsePerms(bad); KindOf(err) != Invalid {
			t.Errorf("ParsePerms(%q) = %v", bad, err)
		}
	}
}
