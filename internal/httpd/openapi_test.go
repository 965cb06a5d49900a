package httpd

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"ferry.dev/ferry/docs"
	"ferry.dev/ferry/internal/ferry"
)

// The servers docs/openapi.yaml names, and the listener each stands for.
var specListeners = map[string]string{
	"https://127.0.0.1:8443": "public",
	"https://127.0.0.1:9443": "admin",
}

// loadSpec parses and validates docs/openapi.yaml as OpenAPI 3.1.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("docs/openapi.yaml says openapi: %s, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI: %v", err)
	}
	return doc
}

// wildcard matches a ServeMux wildcard, {name} or {name...}, and {$}.
var wildcard = regexp.MustCompile(`\{(\$|[A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// routeKey turns a ServeMux pattern served on listener into the form the
// comparison uses, "listener METHOD /path", with the path written as OpenAPI
// writes it: {path...} becomes {path} and {$} (end of path) disappears. A
// pattern without a method has none in its key, and so can never match the
// spec, whose operations all have one.
func routeKey(listener, pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "ANY", pattern
	}
	path = wildcard.ReplaceAllStringFunc(path, func(w string) string {
		m := wildcard.FindStringSubmatch(w)
		if m[1] == "$" {
			return ""
		}
		return "{" + m[1] + "}"
	})
	return listener + " " + method + " " + path
}

// tableRoutes returns the keys of every route of the public listener and of
// the admin plane. The handlers are never called, so the services may be nil.
func tableRoutes() map[string]bool {
	out := map[string]bool{}
	pub := &public{}
	for _, rt := range pub.publicRoutes() {
		out[routeKey("public", rt.pattern)] = true
	}
	adm := &adminPlane{metrics: NewMetrics(func() float64 { return 0 })}
	for _, rt := range adm.adminRoutes() {
		out[routeKey("admin", rt.pattern)] = true
	}
	return out
}

// specRoutes returns the keys of every operation in doc, one per listener it
// is served on (the operation's servers, else its path's, else the
// document's), and what is wrong with the servers and tags: an operation
// served on the admin listener must be tagged admin, and only those may be.
func specRoutes(doc *openapi3.T) (routes map[string]bool, problems []string) {
	routes = map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			servers := doc.Servers
			if len(item.Servers) > 0 {
				servers = item.Servers
			}
			if op.Servers != nil && len(*op.Servers) > 0 {
				servers = *op.Servers
			}
			name := method + " " + path
			if len(servers) == 0 {
				problems = append(problems, fmt.Sprintf("docs/openapi.yaml: %s has no server", name))
			}
			admin := false
			for _, s := range servers {
				l, ok := specListeners[s.URL]
				if !ok {
					problems = append(problems, fmt.Sprintf("docs/openapi.yaml: %s names server %s, which is neither listener", name, s.URL))
					continue
				}
				admin = admin || l == "admin"
				routes[l+" "+name] = true
			}
			if tagged := slices.Contains(op.Tags, "admin"); tagged != admin {
				problems = append(problems, fmt.Sprintf("docs/openapi.yaml: %s is tagged admin: %v, but served on the admin listener: %v", name, tagged, admin))
			}
		}
	}
	return routes, problems
}

// compareRoutes says which routes the spec lacks and which operations of the
// spec no route serves.
func compareRoutes(table, spec map[string]bool) []string {
	var v []string
	for k := range table {
		if !spec[k] {
			l, route, _ := strings.Cut(k, " ")
			v = append(v, fmt.Sprintf("route %q of the %s listener is not in docs/openapi.yaml: describe it there (paths are written with {path} for {path...})", route, l))
		}
	}
	for k := range spec {
		if !table[k] {
			l, route, _ := strings.Cut(k, " ")
			v = append(v, fmt.Sprintf("docs/openapi.yaml describes %q on the %s listener, but no route serves it: remove it or add the route in routes.go", route, l))
		}
	}
	sort.Strings(v)
	return v
}

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and the route tables in
// routes.go equal: every route described, nothing described that is not
// served, each on the right listener.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadSpec(t)
	spec, problems := specRoutes(doc)
	for _, p := range problems {
		t.Error(p)
	}
	for _, p := range compareRoutes(tableRoutes(), spec) {
		t.Error(p)
	}
}

// TestOpenAPIRouteComparisonFails shows that the comparison catches drift in
// either direction: a comparison that cannot fail guards nothing.
func TestOpenAPIRouteComparisonFails(t *testing.T) {
	cases := []struct {
		name   string
		change func(doc *openapi3.T, table map[string]bool)
		want   string
	}{
		{"route missing from the spec", func(doc *openapi3.T, _ map[string]bool) {
			doc.Paths.Delete("/api/v1/me")
		}, `route "GET /api/v1/me" of the public listener is not in docs/openapi.yaml`},
		{"operation missing from the spec", func(doc *openapi3.T, _ map[string]bool) {
			doc.Paths.Value("/api/v1/files/{path}").Delete = nil
		}, `route "DELETE /api/v1/files/{path}" of the public listener is not in docs/openapi.yaml`},
		{"new route", func(_ *openapi3.T, table map[string]bool) {
			table[routeKey("public", "GET /api/v1/shares/{id}")] = true
		}, `route "GET /api/v1/shares/{id}" of the public listener is not in docs/openapi.yaml`},
		{"route removed", func(_ *openapi3.T, table map[string]bool) {
			delete(table, routeKey("public", "POST /api/v1/folders/{path...}"))
		}, `docs/openapi.yaml describes "POST /api/v1/folders/{path}" on the public listener, but no route serves it`},
		{"admin route on the public server", func(doc *openapi3.T, _ map[string]bool) {
			doc.Paths.Value("/admin/v1/orgs").Servers = nil
		}, `docs/openapi.yaml describes "POST /admin/v1/orgs" on the public listener, but no route serves it`},
		{"admin route without the admin tag", func(doc *openapi3.T, _ map[string]bool) {
			doc.Paths.Value("/admin/v1/holds").Post.Tags = []string{"files"}
		}, "POST /admin/v1/holds is tagged admin: false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := loadSpec(t)
			table := tableRoutes()
			c.change(doc, table)
			spec, problems := specRoutes(doc)
			problems = append(problems, compareRoutes(table, spec)...)
			if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, c.want) }) {
				t.Errorf("want a problem containing %q, got:\n%s", c.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestOpenAPISchemas checks what the validator leaves out: that every JSON
// Schema example fits its schema, and that every response status is an HTTP
// status.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadSpec(t)
	for _, p := range lintSpec(doc) {
		t.Error(p)
	}
	// And that these checks can fail.
	doc.Components.Schemas["SHA256"].Value.Examples = []any{"not hex"}
	doc.Paths.Value("/api/v1/me").Get.Responses.Set("999", doc.Paths.Value("/api/v1/me").Get.Responses.Value("200"))
	got := strings.Join(lintSpec(doc), "\n")
	for _, want := range []string{"'not hex' does not match pattern", "GET /api/v1/me: response 999 is not an HTTP status"} {
		if !strings.Contains(got, want) {
			t.Errorf("lintSpec of a broken document: want a problem containing %q, got:\n%s", want, got)
		}
	}
}

// lintSpec returns the examples that do not fit their schemas and the
// responses whose status is not one.
func lintSpec(doc *openapi3.T) []string {
	var v []string
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, ref *openapi3.SchemaRef)
	walk = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		for i, ex := range s.Examples {
			if err := s.VisitJSON(ex, openapi3.EnableJSONSchema2020()); err != nil {
				v = append(v, fmt.Sprintf("docs/openapi.yaml: %s: example %d does not fit the schema: %v", where, i, err))
			}
		}
		for name, p := range s.Properties {
			walk(where+"/properties/"+name, p)
		}
		walk(where+"/items", s.Items)
		for i, sub := range slices.Concat(s.OneOf, s.AnyOf, s.AllOf) {
			walk(where+"/"+strconv.Itoa(i), sub)
		}
	}
	params := func(where string, ps openapi3.Parameters) {
		for _, p := range ps {
			if p.Value != nil {
				walk(where+"/parameters/"+p.Value.Name, p.Value.Schema)
			}
		}
	}
	headers := func(where string, hs openapi3.Headers) {
		for name, h := range hs {
			if h.Value != nil {
				walk(where+"/headers/"+name, h.Value.Schema)
			}
		}
	}
	content := func(where string, c openapi3.Content) {
		for mt, m := range c {
			walk(where+"/"+mt, m.Schema)
		}
	}
	c := doc.Components
	for name, s := range c.Schemas {
		walk("components/schemas/"+name, s)
	}
	for name, p := range c.Parameters {
		walk("components/parameters/"+name, p.Value.Schema)
	}
	headers("components", c.Headers)
	for name, r := range c.Responses {
		headers("components/responses/"+name, r.Value.Headers)
		content("components/responses/"+name, r.Value.Content)
	}
	for name, b := range c.RequestBodies {
		content("components/requestBodies/"+name, b.Value.Content)
	}
	for path, item := range doc.Paths.Map() {
		params(path, item.Parameters)
		for method, op := range item.Operations() {
			where := method + " " + path
			params(where, op.Parameters)
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				content(where+"/requestBody", op.RequestBody.Value.Content)
			}
			for status, r := range op.Responses.Map() {
				if n, err := strconv.Atoi(status); status != "default" && (err != nil || n < 100 || n > 599) {
					v = append(v, fmt.Sprintf("docs/openapi.yaml: %s: response %s is not an HTTP status", where, status))
				}
				if r.Value != nil {
					headers(where+"/"+status, r.Value.Headers)
					content(where+"/"+status, r.Value.Content)
				}
			}
		}
	}
	sort.Strings(v)
	return v
}

func TestRouteKey(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /api/v1/files/{path...}":  "public GET /api/v1/files/{path}",
		"PATCH /api/v1/uploads/{id}":   "public PATCH /api/v1/uploads/{id}",
		"OPTIONS /api/v1/uploads/":     "public OPTIONS /api/v1/uploads/",
		"POST /api/v1/uploads/{$}":     "public POST /api/v1/uploads/",
		"GET /a/{x}/b/{rest...}":       "public GET /a/{x}/b/{rest}",
		"/":                            "public ANY /",
		"GET example.com/api/v1/files": "public GET example.com/api/v1/files",
	} {
		if got := routeKey("public", pattern); got != want {
			t.Errorf("routeKey(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// TestOpenAPIErrorKinds keeps the ErrorKind enum of docs/openapi.yaml equal to
// the wire names of ferry.Kind.
func TestOpenAPIErrorKinds(t *testing.T) {
	doc := loadSpec(t)
	ref := doc.Components.Schemas["ErrorKind"]
	if ref == nil || ref.Value == nil {
		t.Fatal("docs/openapi.yaml has no ErrorKind schema")
	}
	var spec []string
	for _, e := range ref.Value.Enum {
		spec = append(spec, fmt.Sprint(e))
	}
	seen := map[string]bool{}
	var kinds []string
	for k := range 256 {
		if s := ferry.Kind(k).String(); !seen[s] {
			seen[s] = true
			kinds = append(kinds, s)
		}
	}
	sort.Strings(spec)
	sort.Strings(kinds)
	if !slices.Equal(spec, kinds) {
		t.Errorf("ErrorKind enum in docs/openapi.yaml is %v; ferry.Kind names are %v", spec, kinds)
	}
}
