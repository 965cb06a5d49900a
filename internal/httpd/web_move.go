package httpd

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"ferry.dev/ferry/internal/ferry"
)

// The folder chooser of "move": GET /move/PATH?at=FOLDER shows the folders
// inside FOLDER as links one level down (and up, by the breadcrumbs), and a
// "Move here" form that posts FOLDER to POST /move/PATH (web_files.go). It
// is an ordinary server-rendered page: no script, so the page CSP stays
// strict, and links and buttons are what a keyboard reaches with Tab. The
// folders shown are those transfer.List shows the user; the move itself is
// checked by transfer.Move as every move is.

// moveRoutes is the route table of the folder chooser.
func (h *public) moveRoutes() []route {
	return []route{
		{"GET /move/{path...}", h.page(signedIn, h.moveChooser)},
	}
}

// moveChoice is one folder the item can be moved into, or browsed.
type moveChoice struct {
	Name, Href string
}

// movePage is the page data of the folder chooser.
type movePage struct {
	Path    string // the file or folder to move
	Name    string
	Folder  bool
	Self    string // its escaped path, for the form's action
	At      string // the folder shown
	Crumbs  []crumb
	Up      string // the link one level up, if not at the root
	Folders []moveChoice
	Here    bool   // At is where the item already is
	Inside  bool   // At is the folder itself or below it
	Back    string // the item's page
}

// moveHref is the chooser's link for browsing folder at while moving self.
func moveHref(self, at string) string {
	return "/move" + self + "?" + url.Values{"at": {at}}.Encode()
}

func (h *public) moveChooser(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	ctx := r.Context()
	src := folderPath(r)
	if src == "/" {
		return ferry.E("httpd.moveChooser", ferry.Invalid, "the top folder cannot be moved")
	}
	f, _, err := h.tr.Stat(ctx, wr.p, src)
	if err != nil {
		return err
	}
	at, err := ferry.CleanPath(r.URL.Query().Get("at"))
	if err != nil || r.URL.Query().Get("at") == "" {
		at, _ = ferry.ParentPath(src)
	}
	parent, name := ferry.ParentPath(src)
	self := escapePath(src)
	mp := &movePage{Path: src, Name: name, Folder: f == nil, Self: self, At: at, Here: at == parent,
		Inside: f == nil && (at == src || strings.HasPrefix(at, src+"/")), Back: "/files" + self}
	// Breadcrumbs of the folder shown, each a link of the chooser.
	mp.Crumbs = []crumb{{Name: "Files", Href: moveHref(self, "/")}}
	if at != "/" {
		acc := ""
		for _, part := range strings.Split(strings.TrimPrefix(at, "/"), "/") {
			acc += "/" + part
			mp.Crumbs = append(mp.Crumbs, crumb{Name: part, Href: moveHref(self, acc)})
		}
	}
	mp.Crumbs[len(mp.Crumbs)-1].Current = true
	if at != "/" {
		up, _ := ferry.ParentPath(at)
		mp.Up = moveHref(self, up)
	}
	entries, err := h.tr.List(ctx, wr.p, at)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Folder {
			continue
		}
		p := joinPath(at, e.Name)
		if f == nil && p == src {
			continue // not into itself
		}
		mp.Folders = append(mp.Folders, moveChoice{Name: e.Name, Href: moveHref(self, p)})
	}
	sortChoices(mp.Folders)
	d := wr.data("Move " + name)
	d.Data = mp
	return h.show(w, "move", d)
}

// sortChoices sorts folders by name, case-insensitively.
func sortChoices(c []moveChoice) {
	slices.SortStableFunc(c, func(a, b moveChoice) int {
		return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
}
