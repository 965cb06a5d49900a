package cli_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/ferrytest"
)

// impactSite is a running server with two organisations, their parties and
// users, and files read through the REST API, SFTP and the web UI.
type impactSite struct {
	*ferrytest.Server
	t    *testing.T
	dir  string
	mail *ferrytest.Mailpit
	// files by path: content size
	size map[string]int
}

const impactPassword = "correct horse battery staple"

func startImpactSite(t *testing.T, opts ...ferrytest.Option) *impactSite {
	t.Helper()
	if _, err := exec.LookPath("sftp"); err != nil {
		t.Fatalf("OpenSSH sftp is required: %v", err)
	}
	mp := ferrytest.StartMailpit(t)
	s := &impactSite{Server: ferrytest.Start(t, append(opts, ferrytest.WithMail(mp))...), t: t, dir: t.TempDir(), mail: mp, size: map[string]int{}}
	for _, org := range []string{"acme", "beta"} {
		s.Admin("org", "create", org)
	}
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "a@globex.test", "--contact", "b@globex.test")
	s.Admin("party", "create", "--org", "acme", "Initech", "--contact", "c@initech.test")
	s.Admin("party", "create", "--org", "acme", "Umbrella", "--contact", "u@umbrella.test")
	s.Admin("party", "create", "--org", "beta", "Hooli", "--contact", "h@hooli.test")
	s.Admin("folder", "create", "--org", "acme", "/globex", "--party", "Globex")
	s.Admin("folder", "create", "--org", "acme", "/initech", "--party", "Initech")
	s.Admin("folder", "create", "--org", "acme", "/umbrella", "--party", "Umbrella")
	s.Admin("folder", "create", "--org", "acme", "/internal")
	s.Admin("folder", "create", "--org", "beta", "/hooli", "--party", "Hooli")
	acme := s.User("acme", "boss@acme.test", "admin")
	beta := s.User("beta", "boss@beta.test", "admin")
	for i, p := range []string{"/globex/a.csv", "/globex/b.csv", "/initech/c.csv", "/umbrella/d.csv", "/internal/e.txt", "/hooli/h.csv"} {
		tok := acme
		if strings.HasPrefix(p, "/hooli") {
			tok = beta
		}
		n := 1000*(i+1) + 7
		s.size[p] = n
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+p, tok, bytes.NewReader(bytes.Repeat([]byte{'x'}, n))), http.StatusCreated)
	}
	for _, u := range []struct{ org, email string }{{"acme", "alice@acme.test"}, {"acme", "bob@acme.test"}, {"acme", "carol@acme.test"}, {"beta", "eve@beta.test"}} {
		if _, errOut, err := s.Run(impactPassword+"\n", "admin", "user", "create", "--org", u.org, "--email", u.email, "--role", "user", "--password-stdin"); err != nil {
			t.Fatalf("create %s: %v\n%s", u.email, err, errOut)
		}
		s.Admin("grant", "--org", u.org, "--user", u.email, "/", "list,read")
	}
	return s
}

// token creates an API token for a user.
func (s *impactSite) token(email string) string {
	return strings.TrimSpace(s.Admin("token", "create", "--user", email))
}

func (s *impactSite) restGet(tok, path string) {
	s.t.Helper()
	body := ferrytest.Expect(s.t, s.Do("GET", "/api/v1/files"+path, tok, nil), http.StatusOK)
	if len(body) != s.size[path] {
		s.t.Fatalf("GET %s: %d bytes, want %d", path, len(body), s.size[path])
	}
}

// sftpGet downloads paths with OpenSSH's sftp as email, with a new key.
func (s *impactSite) sftpGet(email string, paths ...string) {
	t := s.t
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, email)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(s.dir, strings.Split(email, "@")[0]+"_key")
	if err := os.WriteFile(key, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	if err := os.WriteFile(key+".pub", ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Admin("sshkey", "add", "--user", email, "--key-file", key+".pub")
	host, port, _ := net.SplitHostPort(s.SFTPAddr)
	var batch strings.Builder
	for i, p := range paths {
		fmt.Fprintf(&batch, "get %s %s\n", p, filepath.Join(s.dir, fmt.Sprintf("got%d", i)))
	}
	bf := filepath.Join(s.dir, "batch")
	if err := os.WriteFile(bf, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sftp", "-P", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-i", key, "-o", "IdentitiesOnly=yes", "-b", bf, email+"@"+host)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	for i, p := range paths {
		if fi, err := os.Stat(filepath.Join(s.dir, fmt.Sprintf("got%d", i))); err != nil || fi.Size() != int64(s.size[p]) {
			t.Fatalf("sftp get %s: %v", p, err)
		}
	}
}

// webGet signs in on the web UI and downloads paths there.
func (s *impactSite) webGet(email string, paths ...string) {
	t := s.t
	t.Helper()
	c, ok := webClient(t, s.Server, email, impactPassword)
	if !ok {
		t.Fatalf("web sign-in of %s failed", email)
	}
	for _, p := range paths {
		if folder, ok := strings.CutPrefix(p, "zip:"); ok { // the folder as a zip
			res, err := c.Get(s.PublicURL + "/zip" + folder)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/zip" {
				t.Fatalf("zip download %s: %d, %d bytes", folder, res.StatusCode, len(b))
			}
			continue
		}
		res, err := c.Get(s.PublicURL + "/download" + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || len(b) != s.size[p] {
			t.Fatalf("web download %s: %d, %d bytes", p, res.StatusCode, len(b))
		}
	}
}

// impact runs `ferry audit impact … --json` and decodes the report.
func (s *impactSite) impact(args ...string) (*audit.ImpactReport, string) {
	s.t.Helper()
	out, errOut, err := s.Run("", append([]string{"audit", "impact", "--json"}, args...)...)
	if err != nil {
		s.t.Fatalf("ferry audit impact %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	var rep audit.ImpactReport
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&rep); err != nil {
		s.t.Fatalf("report: %v\n%s", err, out)
	}
	return &rep, out
}

// logEvents returns the audit records matching ferry audit log's flags.
func (s *impactSite) logEvents(args ...string) []ferry.Event {
	s.t.Helper()
	out, errOut, err := s.Run("", append([]string{"audit", "log", "--json"}, args...)...)
	if err != nil {
		s.t.Fatalf("ferry audit log: %v\n%s", err, errOut)
	}
	var evs []ferry.Event
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var ev ferry.Event
		if err := dec.Decode(&ev); err != nil {
			s.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// want is what a report should say of one party: file path → reads.
type want map[string]map[string]int64

// check compares a report with the parties (by name; "" for no party) and
// files expected, byte counts included, and nothing else.
func (s *impactSite) check(name string, rep *audit.ImpactReport, w want) {
	t := s.t
	t.Helper()
	got := want{}
	all := rep.Parties
	if rep.NoParty != nil {
		all = append(slices.Clone(all), rep.NoParty)
	}
	var totalBytes, totalReads int64
	for _, p := range all {
		files := map[string]int64{}
		var pb, pr int64
		for _, f := range p.Files {
			files[f.Path] = f.Reads
			if f.Bytes != int64(s.size[f.Path])*f.Reads {
				t.Errorf("%s: %s: %s: %d bytes, want %d", name, p.Party, f.Path, f.Bytes, int64(s.size[f.Path])*f.Reads)
			}
			if f.FileID == "" || len(f.SHA256) != 64 || f.First.IsZero() || f.Last.Before(f.First) {
				t.Errorf("%s: %s: %+v lacks id, hash or times", name, p.Party, f)
			}
			pb += f.Bytes
			pr += f.Reads
		}
		if p.Bytes != pb || p.Reads != pr {
			t.Errorf("%s: %s totals %d bytes %d reads, files say %d, %d", name, p.Party, p.Bytes, p.Reads, pb, pr)
		}
		totalBytes += pb
		totalReads += pr
		got[p.Party] = files
	}
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("%s: report names\n  %v\nwant\n  %v", name, got, w)
	}
	if rep.Totals.Bytes != totalBytes || rep.Totals.Reads != totalReads || rep.Totals.Parties != len(rep.Parties) {
		t.Errorf("%s: totals %+v", name, rep.Totals)
	}
}

func TestAuditImpact(t *testing.T) {
	s := startImpactSite(t)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	end := func() string { return time.Now().Add(time.Minute).UTC().Format(time.RFC3339) }
	aliceTok, eveTok := s.token("alice@acme.test"), s.token("eve@beta.test")

	// Phase 1: alice's token reads through the API; bob through SFTP;
	// carol in the web UI; eve (another organisation) through the API.
	s.restGet(aliceTok, "/globex/a.csv")
	s.restGet(aliceTok, "/globex/a.csv")
	s.restGet(aliceTok, "/initech/c.csv")
	s.restGet(aliceTok, "/internal/e.txt")
	s.sftpGet("bob@acme.test", "/globex/b.csv")
	s.webGet("carol@acme.test", "/initech/c.csv")
	s.restGet(eveTok, "/hooli/h.csv")
	time.Sleep(1100 * time.Millisecond)
	mid := time.Now().UTC().Format(time.RFC3339)
	time.Sleep(1100 * time.Millisecond)
	// Phase 2: alice again, after mid.
	s.restGet(aliceTok, "/initech/c.csv")

	reads := s.logEvents("--action", "file.read", "--actor", "alice@acme.test")
	if len(reads) == 0 || reads[0].Token == "" {
		t.Fatalf("alice's reads carry no token: %+v", reads)
	}
	aliceTokID := reads[0].Token
	creads := s.logEvents("--action", "file.read", "--actor", "carol@acme.test")
	if len(creads) != 1 || creads[0].Session == "" {
		t.Fatalf("carol's read carries no session: %+v", creads)
	}
	carolSession := creads[0].Session

	alice := want{"Globex": {"/globex/a.csv": 2}, "Initech": {"/initech/c.csv": 2}, "": {"/internal/e.txt": 1}}
	everyone := want{"Globex": {"/globex/a.csv": 2, "/globex/b.csv": 1}, "Initech": {"/initech/c.csv": 3}, "Hooli": {"/hooli/h.csv": 1},
		"": {"/internal/e.txt": 1}}
	for _, tc := range []struct {
		name string
		args []string
		want want
	}{
		{"actor", []string{"--actor", "alice@acme.test"}, alice},
		{"actor in capitals", []string{"--actor", "Alice@Acme.test"}, alice},
		{"token", []string{"--token", aliceTokID}, alice},
		{"whole token", []string{"--token", aliceTok}, alice},
		{"session", []string{"--session", carolSession}, want{"Initech": {"/initech/c.csv": 1}}},
		{"/32", []string{"--ip", "127.0.0.1/32"}, everyone},
		{"one address", []string{"--ip", "127.0.0.1"}, everyone},
		{"/24", []string{"--ip", "127.0.0.0/24"}, everyone},
		{"another network", []string{"--ip", "10.0.0.0/8"}, want{}},
		{"unknown actor", []string{"--actor", "mallory@acme.test"}, want{}},
	} {
		rep, _ := s.impact(append([]string{"--from", start, "--to", end()}, tc.args...)...)
		s.check(tc.name, rep, tc.want)
	}
	// A time window: only what was read after mid.
	rep, _ := s.impact("--from", mid, "--to", end())
	s.check("after mid", rep, want{"Initech": {"/initech/c.csv": 1}})
	rep, _ = s.impact("--from", start, "--to", mid, "--actor", "alice@acme.test")
	s.check("before mid", rep, want{"Globex": {"/globex/a.csv": 2}, "Initech": {"/initech/c.csv": 1}, "": {"/internal/e.txt": 1}})

	// The JSON schema: the stated fields, contacts and actors.
	rep, raw := s.impact("--from", start, "--to", end(), "--ip", "127.0.0.0/24")
	if rep.Schema != audit.ImpactSchema || rep.Scope.CIDR != "127.0.0.0/24" {
		t.Errorf("schema %q, scope %+v", rep.Schema, rep.Scope)
	}
	var generic map[string]any
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "generated", "scope", "checkpoint", "verification", "totals", "parties", "no_party", "reads_after_checkpoint"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
	for _, p := range rep.Parties {
		switch p.Party {
		case "Globex":
			if !slices.Equal(p.Contacts, []string{"a@globex.test", "b@globex.test"}) || !slices.Equal(p.Actors, []string{"alice@acme.test", "bob@acme.test"}) || p.Org != "acme" {
				t.Errorf("Globex: %+v", p)
			}
			if !slices.Equal(p.Remotes, []string{"127.0.0.1"}) {
				t.Errorf("Globex remotes %v", p.Remotes)
			}
		case "Hooli":
			if !slices.Equal(p.Contacts, []string{"h@hooli.test"}) || p.Org != "beta" {
				t.Errorf("Hooli: %+v", p)
			}
		}
	}

	// The cited checkpoint: signed, matching the log, verified, and
	// provably a prefix of the log as it is later.
	if !rep.Check.MatchesLog || rep.Verify == nil || !rep.Verify.OK || rep.Check.Size == 0 || rep.Pending != 0 {
		t.Fatalf("checkpoint %+v, verification %+v, pending %d", rep.Check, rep.Verify, rep.Pending)
	}
	ck := filepath.Join(s.dir, "report-checkpoint")
	if err := os.WriteFile(ck, []byte(rep.Check.Note), 0o644); err != nil {
		t.Fatal(err)
	}
	s.restGet(aliceTok, "/globex/b.csv") // the log grows
	out, errOut, err := s.Run("", "audit", "verify", "--checkpoint", ck)
	if err != nil || !strings.Contains(out, "older checkpoint is a prefix") {
		t.Fatalf("audit verify --checkpoint: %v\n%s%s", err, out, errOut)
	}
	if evs := s.logEvents("--action", "impact.report"); len(evs) < 10 || evs[0].Actor != "operator" || !strings.Contains(evs[0].Detail, "checkpoint") {
		t.Errorf("impact.report records: %d, first %+v", len(evs), evs)
	}

	// The text form names the parties and the checkpoint.
	text, errOut, err := s.Run("", "audit", "impact", "--from", start, "--to", end(), "--actor", "alice@acme.test", "--no-verify")
	if err != nil {
		t.Fatalf("text report: %v\n%s", err, errOut)
	}
	for _, w := range []string{"PARTY Globex", "PARTY Initech", "NO PARTY", "contacts: a@globex.test, b@globex.test", "/globex/a.csv",
		"Computed against audit checkpoint ferry-audit", "--- checkpoint note ---"} {
		if !strings.Contains(text, w) {
			t.Errorf("text report lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "Umbrella") || strings.Contains(text, "Hooli") {
		t.Errorf("text report names a party alice did not read:\n%s", text)
	}

	// Bad input: a clear error, nothing else.
	for _, args := range [][]string{
		{"--from", start},
		{"--from", end(), "--to", start},
		{"--from", start, "--to", end(), "--ip", "not-an-address"},
		{"--from", start, "--to", end(), "--ip", "10.0.0.0/8,127.0.0.1"}, // one range only
	} {
		if _, _, err := s.Run("", append([]string{"audit", "impact"}, args...)...); err == nil {
			t.Errorf("audit impact %v succeeded", args)
		}
	}
}

// adminAPI calls the admin API over the admin socket (as the operator) and
// returns the status and body.
func (s *impactSite) adminAPI(method, path string, body any) (int, string) {
	s.t.Helper()
	sock := filepath.Join(s.Data, "admin.sock")
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://ferry"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return res.StatusCode, ferrytest.Body(s.t, res)
}

func TestAuditImpactNotify(t *testing.T) {
	s := startImpactSite(t)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tok := s.token("alice@acme.test")
	s.restGet(tok, "/globex/a.csv")
	s.restGet(tok, "/initech/c.csv")
	s.restGet(tok, "/internal/e.txt")

	out, errOut, err := s.Run("", "audit", "impact", "--json", "--notify", "--no-verify", "--from", start, "--to", end, "--actor", "alice@acme.test")
	if err != nil {
		t.Fatalf("--notify: %v\n%s", err, errOut)
	}
	var res struct {
		Parties []audit.PartyImpact `json:"parties"`
		Drafts  []struct {
			ID, Report, Party, Subject, Text string
			To                               []string
		} `json:"drafts"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Drafts) != 2 {
		t.Fatalf("%d drafts, want one per party (Globex, Initech):\n%s", len(res.Drafts), out)
	}
	drafts := map[string]int{}
	for i, d := range res.Drafts {
		drafts[d.Party] = i
		if !strings.Contains(d.Text, "[TO EDIT") || !strings.Contains(d.Subject, d.Party) {
			t.Errorf("draft for %s: %q\n%s", d.Party, d.Subject, d.Text)
		}
	}
	globex, initech := res.Drafts[drafts["Globex"]], res.Drafts[drafts["Initech"]]
	if !slices.Equal(globex.To, []string{"a@globex.test", "b@globex.test"}) || !slices.Equal(initech.To, []string{"c@initech.test"}) ||
		!strings.Contains(globex.Text, "/globex/a.csv") || strings.Contains(globex.Text, "/initech/c.csv") || strings.Contains(globex.Text, "/internal/e.txt") {
		t.Fatalf("drafts: %+v", res.Drafts)
	}
	// The text form says where to review them.
	text, _, err := s.Run("", "audit", "impact", "--notify", "--no-verify", "--from", start, "--to", end, "--actor", "alice@acme.test")
	if err != nil || !strings.Contains(text, "2 notifications drafted") || !strings.Contains(text, "/admin/impact/drafts?report=") {
		t.Fatalf("text --notify: %v\n%s", err, text)
	}

	// Listed for review; not sendable before the paragraph is edited.
	code, body := s.adminAPI("GET", "/admin/v1/impact/drafts?report="+globex.Report, nil)
	var listed struct{ Drafts []struct{ ID, State string } }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &listed) != nil || len(listed.Drafts) != 2 ||
		listed.Drafts[0].State != "draft" || listed.Drafts[1].State != "draft" {
		t.Fatalf("drafts: %d %s", code, body)
	}
	if code, body := s.adminAPI("POST", "/admin/v1/impact/drafts/"+globex.ID+"/send", nil); code != http.StatusBadRequest || !strings.Contains(body, "TO EDIT") {
		t.Fatalf("sending an unedited draft: %d %s", code, body)
	}
	if code, body := s.adminAPI("POST", "/admin/v1/impact/drafts/"+globex.ID, map[string]any{"to": []string{"not an address"}, "subject": "x", "text": "y"}); code != http.StatusBadRequest {
		t.Fatalf("a bad recipient: %d %s", code, body)
	}
	for _, d := range []struct {
		id   string
		to   []string
		text string
	}{{globex.ID, globex.To, globex.Text}, {initech.ID, initech.To, initech.Text}} {
		i := strings.Index(d.text, "[TO EDIT")
		j := strings.Index(d.text[i:], "]")
		edited := d.text[:i] + "We have suspended the account and are reviewing every access." + d.text[i+j+1:]
		if code, body := s.adminAPI("POST", "/admin/v1/impact/drafts/"+d.id, map[string]any{"to": d.to, "subject": "Notice of access", "text": edited}); code != http.StatusOK {
			t.Fatalf("edit: %d %s", code, body)
		}
		if code, body := s.adminAPI("POST", "/admin/v1/impact/drafts/"+d.id+"/send", nil); code != http.StatusOK {
			t.Fatalf("send: %d %s", code, body)
		}
	}
	if code, body := s.adminAPI("POST", "/admin/v1/impact/drafts/"+globex.ID+"/send", nil); code != http.StatusConflict {
		t.Fatalf("sending twice: %d %s", code, body)
	}

	// One mail per party reaches each of its contacts.
	for _, to := range []string{"a@globex.test", "b@globex.test", "c@initech.test"} {
		m := s.mail.WaitFor(t, to, "Notice of access", 30*time.Second)
		if !strings.Contains(m.Text, "suspended the account") || strings.Contains(m.Text, "[TO EDIT") {
			t.Errorf("mail to %s:\n%s", to, m.Text)
		}
		if to == "c@initech.test" && (!strings.Contains(m.Text, "/initech/c.csv") || strings.Contains(m.Text, "/globex/")) {
			t.Errorf("Initech's mail:\n%s", m.Text)
		}
	}
	got := map[string]int{}
	for _, m := range s.mail.Messages(t) { // other mail (alerts to the admins) may be there too
		if m.Subject == "Notice of access" {
			for _, to := range m.To {
				got[strings.ToLower(to)]++
			}
		}
	}
	if fmt.Sprint(got) != "map[a@globex.test:1 b@globex.test:1 c@initech.test:1]" {
		t.Errorf("notifications received: %v, want one per party contact", got)
	}
	// Audited: the sends (and the refused attempts), naming the party.
	var ok []ferry.Event
	for _, ev := range s.logEvents("--action", "impact.notify") {
		if ev.Outcome == ferry.OutcomeOK {
			ok = append(ok, ev)
		}
	}
	if len(ok) != 2 || ok[0].Actor != "operator" || ok[0].Party == "" || !strings.Contains(ok[0].Detail+ok[1].Detail, "a@globex.test") {
		t.Errorf("impact.notify records: %+v", ok)
	}
	if evs := s.logEvents("--action", "impact.edit"); len(evs) < 2 {
		t.Errorf("impact.edit records: %d", len(evs))
	}
}

// TestAuditImpactPostgres runs the report on a server in cluster mode
// (PostgreSQL), with --db; a zip download of a folder counts as a read of
// each of its files.
func TestAuditImpactPostgres(t *testing.T) {
	s := startImpactSite(t, ferrytest.WithPostgres())
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tok := s.token("alice@acme.test")
	s.restGet(tok, "/globex/a.csv")
	s.restGet(tok, "/internal/e.txt")
	s.sftpGet("bob@acme.test", "/initech/c.csv")
	s.webGet("carol@acme.test", "/globex/b.csv", "zip:/globex")
	creads := s.logEvents("--action", "file.read", "--actor", "carol@acme.test")
	if len(creads) != 3 || creads[0].Session == "" {
		t.Fatalf("carol's read: %+v", creads)
	}
	for _, tc := range []struct {
		name string
		args []string
		want want
	}{
		{"actor", []string{"--actor", "alice@acme.test"}, want{"Globex": {"/globex/a.csv": 1}, "": {"/internal/e.txt": 1}}},
		{"token", []string{"--token", tok}, want{"Globex": {"/globex/a.csv": 1}, "": {"/internal/e.txt": 1}}},
		// The zip of /globex read both of its files.
		{"session", []string{"--session", creads[0].Session}, want{"Globex": {"/globex/a.csv": 1, "/globex/b.csv": 2}}},
		{"/24", []string{"--ip", "127.0.0.0/24"}, want{"Globex": {"/globex/a.csv": 2, "/globex/b.csv": 2}, "Initech": {"/initech/c.csv": 1}, "": {"/internal/e.txt": 1}}},
		{"v6", []string{"--ip", "::1/128"}, want{}},
	} {
		rep, _ := s.impact(append([]string{"--from", start, "--to", end}, tc.args...)...)
		s.check(tc.name, rep, tc.want)
		if !rep.Check.MatchesLog || rep.Verify == nil || !rep.Verify.OK {
			t.Errorf("%s: checkpoint %+v, verification %+v", tc.name, rep.Check, rep.Verify)
		}
	}
}
