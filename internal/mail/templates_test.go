package mail

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestTemplatePairs: the notifications people outside the admin team read
// (packages, share links, watches, invitations) come as plain text and HTML,
// and the HTML alternative uses only fields the text one does, so a caller
// that fills the text template fills both (a missing field is an error at
// send time).
func TestTemplatePairs(t *testing.T) {
	files := map[string]string{}
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, p)
		files[path.Base(p)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`\{\{[^}]*?\.([A-Z][A-Za-z0-9]*)`)
	fields := func(s string) []string {
		var out []string
		for _, m := range field.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		return out
	}
	checked := 0
	for name, txt := range files {
		stem, ok := strings.CutSuffix(name, ".txt")
		if !ok || !slices.ContainsFunc([]string{"package_", "share_", "watch_", "invite_"}, func(p string) bool { return strings.HasPrefix(stem, p) }) {
			continue
		}
		html, ok := files[stem+".html"]
		if !ok {
			t.Errorf("%s has no HTML alternative %s.html", name, stem)
			continue
		}
		have := fields(txt)
		for _, f := range fields(html) {
			if !slices.Contains(have, f) {
				t.Errorf("%s.html uses .%s, which %s does not", stem, f, name)
			}
		}
		checked++
	}
	if checked < 8 {
		t.Fatalf("checked %d notification templates, want the package, share, watch and invitation ones", checked)
	}
}
