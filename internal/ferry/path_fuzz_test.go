package ferry_test

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"ferry.dev/ferry/internal/ferry"
)

// FuzzPathTraversal (path traversal, issue 9): whatever a client sends, a path
// CleanPath accepts is canonical, absolute, free of "." and "..", control
// characters and backslashes, and stays inside the organisation's tree when
// joined to any folder: path.Join(base, p) never leaves base. The seed
// corpus runs as an ordinary test in CI; `go test -fuzz FuzzPathTraversal
// ./internal/ferry` searches further.
func FuzzPathTraversal(f *testing.F) {
	for _, s := range []string{
		"/", "", "a", "/a/b", "a/b/", "../etc/passwd", "/../../etc/passwd", "a/../../b", "a/./b", "./a", "a//b",
		"..", ".", "...", "a/..", "%2e%2e/x", "..%2f..%2f", "..\\..\\windows", "a\\b", "a\x00b", "a\nb", "\x7f",
		"\u202e", "a/\u00a0/b", "\xc0\xae\xc0\xae/x", "\xff", "/" + strings.Repeat("a/", 3000), strings.Repeat("x", 300),
		"C:\\boot.ini", "//server/share", "/a/b/../../../..", "a/b/c/../../..", "\u2024\u2024/x", "．．/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		clean, err := ferry.CleanPath(p)
		if err != nil {
			if ferry.KindOf(err) != ferry.Invalid {
				t.Fatalf("CleanPath(%q): kind %v", p, ferry.KindOf(err))
			}
			return
		}
		if !strings.HasPrefix(clean, "/") || (clean != "/" && strings.HasSuffix(clean, "/")) || strings.Contains(clean, "//") {
			t.Fatalf("CleanPath(%q) = %q: not canonical", p, clean)
		}
		if path.Clean(clean) != clean {
			t.Fatalf("CleanPath(%q) = %q, path.Clean gives %q", p, clean, path.Clean(clean))
		}
		if again, err := ferry.CleanPath(clean); err != nil || again != clean {
			t.Fatalf("CleanPath not idempotent on %q: %q %v", clean, again, err)
		}
		if !utf8.ValidString(clean) || strings.ContainsAny(clean, "\\\x00") {
			t.Fatalf("CleanPath(%q) = %q", p, clean)
		}
		for _, el := range ferry.SplitPath(clean) {
			if el == "" || el == "." || el == ".." || ferry.ValidName(el) != nil {
				t.Fatalf("CleanPath(%q) = %q has element %q", p, clean, el)
			}
		}
		for _, base := range []string{"/finance", "/a/b/c"} {
			if j := path.Join(base, clean); j != base && !strings.HasPrefix(j, base+"/") {
				t.Fatalf("%q joined to %s escapes it: %q", p, base, j)
			}
		}
		parent, name := ferry.ParentPath(clean)
		if clean != "/" && (path.Join(parent, name) != clean || ferry.ValidName(name) != nil) {
			t.Fatalf("ParentPath(%q) = %q, %q", clean, parent, name)
		}
	})
}
