package config

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	file := "# comment\ndata = /from/file\npublic-addr = 127.0.0.1:1\nsweep-interval = 5m\n"
	env := map[string]string{"FERRY_PUBLIC_ADDR": "127.0.0.1:2", "FERRY_CONFIG": "/etc/ferry.conf"}
	read := func(p string) ([]byte, error) {
		if p != "/etc/ferry.conf" {
			return nil, os.ErrNotExist
		}
		return []byte(file), nil
	}
	c, err := Load([]string{"--admin-addr", "[::1]:3"}, func(k string) string { return env[k] }, read, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Data != "/from/file" || c.PublicAddr != "127.0.0.1:2" || c.AdminAddr != "[::1]:3" || c.SweepInterval != 5*time.Minute || c.SFTPAddr != "127.0.0.1:2222" {
		t.Fatalf("got %+v", c)
	}
	c, err = Load([]string{"--public-addr", "127.0.0.1:9"}, func(k string) string { return env[k] }, read, io.Discard)
	if err != nil || c.PublicAddr != "127.0.0.1:9" {
		t.Fatalf("flag does not win: %+v %v", c, err)
	}
	if c.DSN() != "/from/file/ferry.db" {
		t.Fatalf("DSN = %q", c.DSN())
	}
	if c.SFTPConnsPerIP != 256 || c.SFTPSessions != 10 || c.SFTPAuthTries != 6 || c.SFTPIdle != 15*time.Minute || c.UploadTTL != 24*time.Hour {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = Load([]string{"--sftp-max-conns-per-ip", "1000", "--sftp-idle-timeout", "1h", "--sftp-max-buffered-writes", "1073741824"}, func(k string) string { return "" }, read, io.Discard)
	if err != nil || c.SFTPConnsPerIP != 1000 || c.SFTPIdle != time.Hour || c.SFTPBuffered != 1<<30 {
		t.Fatalf("sftp limits: %+v %v", c, err)
	}
}

func TestBadConfig(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		file string
		want string
	}{
		{[]string{"--admin-addr", "0.0.0.0:9443"}, "", "not a loopback"},
		{[]string{"--public-addr", "nope"}, "", "HOST:PORT"},
		{[]string{"--config", "x"}, "bogus = 1\n", "unknown key"},
		{[]string{"--config", "x"}, "data\n", "key = value"},
		{[]string{"--sweep-interval", "soon"}, "", "bad value"},
		{[]string{"--tls-cert", "a.pem"}, "", "go together"},
		{[]string{"extra"}, "", "unexpected argument"},
		{[]string{"--sftp-max-conns-per-ip", "0"}, "", "must be positive"},
		{[]string{"--sftp-max-buffered-writes", "1000"}, "", "at least 8388608"},
		{[]string{"--upload-ttl", "-1h"}, "", "must be positive"},
		{[]string{"--outbound-allow", "10.0.0.0/33"}, "", "bad value"},
		{[]string{"--outbound-allow", "localhost"}, "", "bad value"},
		{[]string{"--outbound-allow", "10.0.0.0/8;rm"}, "", "bad value"},
		{[]string{"--smtp-url", "smtp://mail.example.com:25"}, "", "needs mail-from"},
	} {
		_, err := Load(tc.args, none, func(string) ([]byte, error) { return []byte(tc.file), nil }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestOutboundAllow(t *testing.T) {
	none := func(string) string { return "" }
	read := func(string) ([]byte, error) { return nil, nil }
	c, err := Load([]string{"--outbound-allow", " 10.0.0.1/8, 192.168.1.7 ,fd00::/8,,::1"}, none, read, io.Discard)
	if err != nil || fmt.Sprint(c.OutboundAllow) != "[10.0.0.0/8 192.168.1.7/32 fd00::/8 ::1/128]" {
		t.Fatalf("outbound-allow: %v %v", c, err)
	}
	if c, err := Load(nil, none, read, io.Discard); err != nil || len(c.OutboundAllow) != 0 {
		t.Fatalf("default outbound-allow: %v %v", c, err)
	}
}
