package sftpd

import (
	"encoding/binary"
	"io"
	"sync"
)

// SFTP v3 packet types and open flags used by the filter.
const (
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpFstat         = 8
	fxpFsetstat      = 10
	fxpReaddir       = 12
	fxpStatus        = 101
	fxpHandle        = 102
	fxpExtended      = 200
	fxpExtendedReply = 201

	pflagWrite  = 0x02
	pflagAppend = 0x04
	pflagCreat  = 0x08
	pflagTrunc  = 0x10

	fxPermissionDenied = 3
	fxFailure          = 4
)

// The limits Ferry advertises with limits@openssh.com. maxPacket is
// pkg/sftp's own limit on an incoming packet; reads and writes of 255 KiB fit
// in it with their headers, as with OpenSSH's sftp-server.
const (
	maxPacket     = 256 * 1024
	maxReadWrite  = maxPacket - 1024
	maxOpenHandle = 64
	// maxInflight bounds the requests pkg/sftp holds at once: it answers
	// them in order, so without a bound a client could pile up replies
	// (255 KiB each) behind one slow request. 16 replies in flight fill an
	// SSH channel window (2 MiB) twice over.
	maxInflight = 16
)

// extensions is the extension list of Ferry's SSH_FXP_VERSION reply: pkg/sftp
// cannot advertise limits@openssh.com itself, and its default list names
// hardlink@openssh.com, which Ferry does not do.
var extensions = [][2]string{
	{"posix-rename@openssh.com", "1"},
	{"statvfs@openssh.com", "2"},
	{"limits@openssh.com", "1"},
}

// filter sits between the SSH channel and pkg/sftp's RequestServer and sees
// every packet in both directions, in the order the client sent them. It
//
//   - replaces the extension list of the server's version reply (adding
//     limits@openssh.com, dropping hardlink@openssh.com) and answers the
//     client's limits request itself, so that clients send and ask for 255 KiB
//     at a time instead of 32 KiB;
//   - refuses reads on handles opened for writing and writes on handles opened
//     for reading (pkg/sftp would turn a read on a write handle into a write
//     of zeros), and any request on a handle it has not yet handed out
//     (pkg/sftp would race with the open still in progress).
//
// It copies only packet headers: write payloads pass straight through.
type filter struct {
	rw io.ReadWriteCloser

	// Read side: only pkg/sftp's reader goroutine calls Read.
	held    []byte // bytes of the current packet read ahead for inspection
	heldOff int
	body    int64 // bytes of the current packet still to pass through
	buf     []byte

	mu       sync.Mutex // guards what follows
	cond     sync.Cond
	opens    map[uint32]uint32 // id of an OPEN awaiting its reply → pflags
	handles  map[string]*handleInfo
	wremain  int  // bytes of the outgoing packet being written still to come
	started  bool // the first packet (the version reply) has gone out
	inflight int  // requests passed to pkg/sftp and not answered yet
	closed   bool
}

type handleInfo struct {
	file  bool // opened with OPEN (not OPENDIR)
	write bool // opened for writing
}

func newFilter(rw io.ReadWriteCloser) *filter {
	f := &filter{rw: rw, opens: map[uint32]uint32{}, handles: map[string]*handleInfo{}, buf: make([]byte, 4096)}
	f.cond.L = &f.mu
	return f
}

// Close closes the channel.
func (f *filter) Close() error {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	return f.rw.Close()
}

// Read implements io.Reader for pkg/sftp.
func (f *filter) Read(p []byte) (n int, err error) {
	defer recoverTo(&err)
	for {
		if f.heldOff < len(f.held) {
			n := copy(p, f.held[f.heldOff:])
			f.heldOff += n
			return n, nil
		}
		if f.body > 0 {
			if int64(len(p)) > f.body {
				p = p[:f.body]
			}
			n, err := f.rw.Read(p)
			f.body -= int64(n)
			if err == io.EOF && f.body > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
}

// wait blocks while pkg/sftp holds maxInflight unanswered requests.
func (f *filter) wait() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.inflight >= maxInflight && !f.closed {
		f.cond.Wait()
	}
	if f.closed {
		return io.ErrClosedPipe
	}
	return nil
}

// next reads the start of the next packet (the whole packet if it is small)
// into held and decides what to do with it.
func (f *filter) next() error {
	f.held, f.heldOff = f.buf[:0], 0
	if err := f.wait(); err != nil {
		return err
	}
	if _, err := io.ReadFull(f.rw, f.buf[:4]); err != nil {
		return err
	}
	length := int64(binary.BigEndian.Uint32(f.buf))
	if length < 5 || length > maxPacket {
		// Malformed: pass it on for pkg/sftp to reject (it closes the session).
		f.held, f.body = f.buf[:4], length
		f.mu.Lock()
		f.inflight++
		f.mu.Unlock()
		return nil
	}
	// A write's header (type, id, handle of up to 64 bytes, offset), or the
	// whole of any other packet up to 64 KiB.
	want := length
	if typ, err := f.peekType(); err != nil {
		return err
	} else if typ == fxpWrite {
		want = min(length, 1+4+4+64+8)
	} else if length > 64<<10 {
		want = 1
	}
	if int(4+want) > len(f.buf) {
		f.buf = append(f.buf[:cap(f.buf)], make([]byte, int(4+want)-cap(f.buf))...)
	}
	if _, err := io.ReadFull(f.rw, f.buf[5:4+want]); err != nil {
		return unexpected(err)
	}
	f.held, f.body = f.buf[:4+want], length-want
	pkt := f.held[4:]
	var err error
	switch pkt[0] {
	case fxpOpen:
		f.onOpen(pkt)
	case fxpRead, fxpWrite:
		err = f.onReadWrite(pkt)
	case fxpClose, fxpFstat, fxpFsetstat, fxpReaddir:
		err = f.onHandle(pkt)
	case fxpExtended:
		err = f.onExtended(pkt)
	}
	if err == nil && len(f.held) > 0 {
		f.mu.Lock()
		f.inflight++ // passed on: pkg/sftp will answer it
		f.mu.Unlock()
	}
	return err
}

// onHandle refuses requests on handles that the server has not handed out
// (yet): pkg/sftp would race with the open still being processed.
func (f *filter) onHandle(pkt []byte) error {
	id, h, ok := idHandle(pkt)
	if !ok {
		return nil // malformed: pkg/sftp rejects it
	}
	f.mu.Lock()
	_, known := f.handles[h]
	if known && pkt[0] == fxpClose {
		delete(f.handles, h)
	}
	f.mu.Unlock()
	if known {
		return nil
	}
	return f.refuse(id, fxFailure, "invalid handle")
}

// refuse drops the current packet and answers it with a status.
func (f *filter) refuse(id, code uint32, msg string) error {
	if err := f.drop(); err != nil {
		return err
	}
	return f.inject(statusPacket(id, code, msg))
}

// peekType reads the packet type byte into buf[4].
func (f *filter) peekType() (byte, error) {
	if _, err := io.ReadFull(f.rw, f.buf[4:5]); err != nil {
		return 0, unexpected(err)
	}
	return f.buf[4], nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// drop discards the rest of the current packet.
func (f *filter) drop() error {
	f.held, f.heldOff = f.buf[:0], 0
	if f.body > 0 {
		n, err := io.CopyN(io.Discard, f.rw, f.body)
		f.body -= n
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

func (f *filter) onOpen(pkt []byte) {
	// byte type, uint32 id, string filename, uint32 pflags, attrs
	if len(pkt) < 9 {
		return
	}
	id := binary.BigEndian.Uint32(pkt[1:])
	_, rest, ok := str(pkt[5:])
	if !ok || len(rest) < 4 {
		return
	}
	f.mu.Lock()
	if len(f.opens) < 1024 {
		f.opens[id] = binary.BigEndian.Uint32(rest)
	}
	f.mu.Unlock()
}

func (f *filter) onReadWrite(pkt []byte) error {
	id, h, ok := idHandle(pkt)
	if !ok {
		return nil
	}
	f.mu.Lock()
	hi := f.handles[h]
	if hi == nil {
		f.mu.Unlock()
		return f.refuse(id, fxFailure, "invalid handle")
	}
	refuse := ""
	switch {
	case pkt[0] == fxpRead && (hi.write || !hi.file):
		refuse = "handle not open for reading"
	case pkt[0] == fxpWrite && (!hi.write || !hi.file):
		refuse = "handle not open for writing"
	}
	f.mu.Unlock()
	if refuse == "" {
		return nil
	}
	return f.refuse(id, fxPermissionDenied, refuse)
}

func (f *filter) onExtended(pkt []byte) error {
	if len(pkt) < 5 {
		return nil
	}
	id := binary.BigEndian.Uint32(pkt[1:])
	name, _, ok := str(pkt[5:])
	if !ok || string(name) != "limits@openssh.com" {
		return nil
	}
	if err := f.drop(); err != nil {
		return err
	}
	b := make([]byte, 0, 4+1+4+4*8)
	b = binary.BigEndian.AppendUint32(b, 1+4+4*8)
	b = append(b, fxpExtendedReply)
	b = binary.BigEndian.AppendUint32(b, id)
	for _, v := range []uint64{maxPacket, maxReadWrite, maxReadWrite, maxOpenHandle} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return f.inject(b)
}

// Write implements io.Writer for pkg/sftp, which writes each packet as one
// or two calls (header, then payload) while holding its own lock.
func (f *filter) Write(b []byte) (n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer recoverTo(&err)
	out := b
	if f.wremain == 0 && len(b) >= 9 {
		total := 4 + int(binary.BigEndian.Uint32(b))
		if b[4] == fxpStatus {
			delete(f.opens, binary.BigEndian.Uint32(b[5:]))
		}
		if len(b) == total {
			out = f.onReply(b)
		}
		f.wremain = total - len(b)
		f.started = true
		if f.inflight > 0 {
			f.inflight--
			f.cond.Broadcast()
		}
	} else {
		f.wremain -= len(b)
	}
	if f.wremain < 0 {
		f.wremain = 0
	}
	_, err = f.rw.Write(out)
	if f.wremain == 0 {
		f.cond.Broadcast()
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// onReply inspects a complete outgoing packet and returns what to send.
// f.mu is held.
func (f *filter) onReply(b []byte) []byte {
	pkt := b[4:]
	switch pkt[0] {
	case fxpVersion:
		if !f.started {
			return versionPacket(binary.BigEndian.Uint32(pkt[1:]))
		}
	case fxpHandle:
		id, h, ok := idHandle(pkt)
		if !ok {
			return b
		}
		pflags, isOpen := f.opens[id]
		delete(f.opens, id)
		f.handles[h] = &handleInfo{file: isOpen, write: pflags&(pflagWrite|pflagAppend|pflagCreat|pflagTrunc) != 0}
	}
	return b
}

// inject sends a packet of the filter's own between two of pkg/sftp's.
func (f *filter) inject(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.wremain != 0 && !f.closed {
		f.cond.Wait()
	}
	if f.closed {
		return io.ErrClosedPipe
	}
	_, err := f.rw.Write(b)
	return err
}

func versionPacket(version uint32) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4, 256), 0)[:4]
	b = append(b, fxpVersion)
	b = binary.BigEndian.AppendUint32(b, min(version, 3))
	for _, e := range extensions {
		b = appendStr(b, e[0])
		b = appendStr(b, e[1])
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)) // #nosec G115 -- a type, a version and the constant extensions: about 100 bytes
	return b
}

func statusPacket(id uint32, code uint32, msg string) []byte {
	b := make([]byte, 4, 32+len(msg))
	b = append(b, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, code)
	b = appendStr(b, msg)
	b = appendStr(b, "en")
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)) // #nosec G115 -- msg is one of refuse's constant messages: under 100 bytes in all
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) // #nosec G115 -- s is a constant: an extension name or value, a status message or "en"
	return append(b, s...)
}

// str parses an SFTP string.
func str(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if int64(n) > int64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// idHandle parses the id and handle that start a packet (after its type).
func idHandle(pkt []byte) (uint32, string, bool) {
	if len(pkt) < 5 {
		return 0, "", false
	}
	h, _, ok := str(pkt[5:])
	if !ok {
		return 0, "", false
	}
	return binary.BigEndian.Uint32(pkt[1:]), string(h), true
}
