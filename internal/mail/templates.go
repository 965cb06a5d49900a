package mail

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"strings"
	texttemplate "text/template"

	"ferry.dev/ferry/internal/ferry"
)

// Templates live in templates/ as <name>.<locale>.txt (text/template; its
// first line is "Subject: …", the rest is the body) and optionally
// <name>.<locale>.html (html/template, the HTML alternative). <name> is the
// mail's kind with dots written as underscores: kind "package.received"
// uses package_received.en.txt. Both kinds of template can call
// {{link "/path"}} for an absolute link on the public listener.
//
//go:embed templates
var templateFS embed.FS

type templates struct {
	text map[string]*texttemplate.Template // "name.locale"
	html map[string]*htmltemplate.Template
}

func (o *Outbox) loadTemplates() (*templates, error) {
	t := &templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	funcs := map[string]any{"link": o.Link}
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, p)
		if err != nil {
			return err
		}
		base := path.Base(p)
		switch ext := path.Ext(base); ext {
		case ".txt":
			key := strings.TrimSuffix(base, ext)
			tt, err := texttemplate.New(base).Funcs(funcs).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return fmt.Errorf("mail template %s: %w", base, err)
			}
			if !strings.HasPrefix(string(b), "Subject: ") {
				return fmt.Errorf("mail template %s: the first line must be \"Subject: …\"", base)
			}
			t.text[key] = tt
		case ".html":
			key := strings.TrimSuffix(base, ext)
			ht, err := htmltemplate.New(base).Funcs(funcs).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return fmt.Errorf("mail template %s: %w", base, err)
			}
			t.html[key] = ht
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range t.html {
		if t.text[k] == nil {
			return nil, fmt.Errorf("mail template %s.html has no %s.txt", k, k)
		}
	}
	return t, nil
}

// TemplateName returns the file name stem of a kind's templates:
// "package.received" → "package_received".
func TemplateName(kind string) string { return strings.ReplaceAll(kind, ".", "_") }

// validLocale accepts locales such as "en", "de", "pt-BR".
func validLocale(l string) bool {
	if l == "" || len(l) > 16 {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Render renders the templates of kind in locale (falling back to the
// locale's language, then to "en") with data, and returns the message for
// to; nothing is stored.
func (o *Outbox) Render(kind, locale string, to []string, data any) (Message, error) {
	const op = "mail.Render"
	name := TemplateName(kind)
	var tries []string
	if validLocale(locale) {
		tries = append(tries, locale)
		if lang, _, ok := strings.Cut(strings.ReplaceAll(locale, "_", "-"), "-"); ok {
			tries = append(tries, lang)
		}
	}
	tries = append(tries, "en")
	for _, l := range tries {
		tt := o.tmpl.text[name+"."+l]
		if tt == nil {
			continue
		}
		var buf bytes.Buffer
		if err := tt.Execute(&buf, data); err != nil {
			return Message{}, ferry.E(op, ferry.Internal, fmt.Errorf("template %s.%s.txt: %w", name, l, err))
		}
		first, body, _ := strings.Cut(buf.String(), "\n")
		subject := strings.TrimSpace(strings.TrimPrefix(first, "Subject: "))
		body = strings.TrimPrefix(body, "\n")
		m := Message{To: to, Subject: subject, Text: body, Kind: kind}
		if ht := o.tmpl.html[name+"."+l]; ht != nil {
			var hb bytes.Buffer
			if err := ht.Execute(&hb, data); err != nil {
				return Message{}, ferry.E(op, ferry.Internal, fmt.Errorf("template %s.%s.html: %w", name, l, err))
			}
			m.HTML = hb.String()
		}
		return m, nil
	}
	return Message{}, ferry.E(op, ferry.Internal, fmt.Errorf("no mail template %s.en.txt", name))
}

// Notify renders the templates of kind (see Render) and enqueues the mail
// to the recipients. A subject that would contain a line break (say, from a
// user-supplied value) is refused like any other invalid message.
func (o *Outbox) Notify(ctx context.Context, kind, locale string, to []string, data any) error {
	m, err := o.Render(kind, locale, to, data)
	if err != nil {
		return err
	}
	_, err = o.Enqueue(ctx, m)
	return err
}
