package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/mail"
)

func TestParseRecipients(t *testing.T) {
	got, err := mail.ParseRecipients([]string{" Ann <ann@example.test> ", "", "bob@example.test"})
	if err != nil || strings.Join(got, ",") != "ann@example.test,bob@example.test" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, tc := range []struct {
		in   []string
		name string // the message must name this
	}{
		{[]string{"ann@example.test", "not-an-address"}, "not-an-address"},
		{[]string{"ann@example.test", "ANN@example.test"}, "ANN@example.test"},
		{[]string{"ann@example.test", "Ann Again <ann@example.test>"}, "ann@example.test"},
		{[]string{"ann@example.test\r\nBcc: victim@example.test"}, "ann@example.test"},
		{[]string{"ann@example.test\nX: y"}, "ann@example.test"},
		{[]string{"undisclosed-recipients:;"}, "undisclosed"},
		{nil, "no recipients"},
		{[]string{"", " "}, "no recipients"},
	} {
		_, err := mail.ParseRecipients(tc.in)
		if ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("ParseRecipients(%q): err = %v, want Invalid", tc.in, err)
			continue
		}
		if msg := ferry.Message(err); !strings.Contains(msg, tc.name) {
			t.Errorf("ParseRecipients(%q): message %q does not name %q", tc.in, msg, tc.name)
		}
	}
}

func newOutbox(t *testing.T, smtpURL string) (*mail.Outbox, *db.DB) {
	t.Helper()
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: smtpURL, From: "Ferry <ferry@example.test>", PublicURL: "https://files.example.test:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	return o, d
}

// TestEnqueueRefusesHeaderInjection: CR or LF in a subject or an address,
// and invalid or duplicate recipients, are refused and nothing is stored.
func TestEnqueueRefusesHeaderInjection(t *testing.T) {
	o, d := newOutbox(t, "")
	ctx := context.Background()
	good := mail.Message{To: []string{"ann@example.test"}, Subject: "Files for you", Text: "hello", Kind: "test"}
	for name, m := range map[string]mail.Message{
		"CRLF in subject":   {To: good.To, Subject: "hi\r\nBcc: victim@example.test", Text: "x"},
		"LF in subject":     {To: good.To, Subject: "hi\nBcc: victim@example.test", Text: "x"},
		"CR in subject":     {To: good.To, Subject: "hi\rBcc: victim@example.test", Text: "x"},
		"CRLF in address":   {To: []string{"ann@example.test\r\nBcc: victim@example.test"}, Subject: "hi", Text: "x"},
		"invalid address":   {To: []string{"ann@"}, Subject: "hi", Text: "x"},
		"duplicate address": {To: []string{"ann@example.test", "Ann@Example.test"}, Subject: "hi", Text: "x"},
		"no recipient":      {Subject: "hi", Text: "x"},
		"empty subject":     {To: good.To, Text: "x"},
		"empty body":        {To: good.To, Subject: "hi"},
	} {
		if _, err := o.Enqueue(ctx, m); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("%s: err = %v, want Invalid", name, err)
		}
	}
	if n, _ := d.MailCounts(ctx); n[db.MailQueued] != 0 {
		t.Fatalf("refused messages were stored: %v", n)
	}
	// Queued (not sent) without an SMTP server configured.
	id, err := o.Enqueue(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	row, err := d.Mail(ctx, id)
	if err != nil || row.Status != db.MailQueued || row.Subject != good.Subject || row.Kind != "test" {
		t.Fatalf("row = %+v, %v", row, err)
	}
}

func TestNotifyTemplates(t *testing.T) {
	o, d := newOutbox(t, "")
	ctx := context.Background()
	if got := o.Link("/invite/abc"); got != "https://files.example.test:8443/invite/abc" {
		t.Fatalf("Link = %q", got)
	}
	data := map[string]any{"InvitedBy": "Admin <admin@example.test>", "Org": "Acme", "Link": o.Link("/invite/abc"), "Expires": "tomorrow"}
	// An unknown locale falls back to English.
	m, err := o.Render("invite.user", "xx-YY", []string{"ann@example.test"}, data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "You are invited to Ferry" || !strings.Contains(m.Text, "https://files.example.test:8443/invite/abc") || strings.HasPrefix(m.Text, "Subject:") {
		t.Fatalf("rendered = %+v", m)
	}
	// The HTML alternative escapes values.
	if !strings.Contains(m.HTML, "Admin &lt;admin@example.test&gt;") {
		t.Fatalf("HTML not escaped: %s", m.HTML)
	}
	if err := o.Notify(ctx, "invite.user", "en", []string{"ann@example.test"}, data); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.MailCounts(ctx); n[db.MailQueued] != 1 {
		t.Fatalf("counts = %v", n)
	}
	if err := o.Notify(ctx, "no.such.kind", "en", []string{"ann@example.test"}, data); err == nil {
		t.Fatal("Notify with an unknown kind succeeded")
	}
	// A missing field is an error, not a mail with "<no value>".
	if _, err := o.Render("invite.user", "en", []string{"ann@example.test"}, map[string]any{}); err == nil {
		t.Fatal("Render with missing data succeeded")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	d := dbtest.SQLite(t)
	for name, c := range map[string]mail.Config{
		"http scheme":      {SMTPURL: "http://127.0.0.1:25", From: "a@example.test"},
		"no from":          {SMTPURL: "smtp://127.0.0.1:25"},
		"bad from":         {SMTPURL: "smtp://127.0.0.1:25", From: "not an address"},
		"from with CRLF":   {SMTPURL: "smtp://127.0.0.1:25", From: "a@example.test\r\nBcc: b@example.test"},
		"bad port":         {SMTPURL: "smtp://127.0.0.1:99999", From: "a@example.test"},
		"public URL query": {PublicURL: "https://x.test/?a=b"},
		"starttls typo":    {SMTPURL: "smtp://127.0.0.1:25?starttls=yes", From: "a@example.test"},
		"unknown option":   {SMTPURL: "smtp://127.0.0.1:25?tls=1", From: "a@example.test"},
		"starttls twice":   {SMTPURL: "smtp://127.0.0.1:25?starttls=required&starttls=required", From: "a@example.test"},
		"starttls smtps":   {SMTPURL: "smtps://127.0.0.1?starttls=required", From: "a@example.test"},
		"public URL ftp":   {PublicURL: "ftp://x.test/"},
	} {
		c.DB = d
		if _, err := mail.New(c); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	for _, u := range []string{"smtp://127.0.0.1:2525", "smtps://user:p%40ss@mail.example.test", "smtp://mail.example.test",
		"smtp://mail.example.test:587?starttls=required", "smtp://mail.example.test?starttls=opportunistic"} {
		if _, err := mail.New(mail.Config{DB: d, SMTPURL: u, From: "a@example.test", Now: time.Now}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
