package ferry

import (
	"strings"
	"unicode/utf8"
)

// MaxPathLen is the longest path, in bytes, that Ferry accepts.
const MaxPathLen = 4096

// MaxNameLen is the longest single path element, in bytes.
const MaxNameLen = 255

// CleanPath validates a user-supplied path inside an organisation and returns
// it in canonical form: a leading "/", elements separated by single "/", no
// trailing "/" (the root is "/"). It rejects rather than repairs anything
// suspicious: "." and ".." elements, empty elements ("a//b"), NUL and other
// control characters, backslashes, invalid UTF-8, elements over MaxNameLen and
// paths over MaxPathLen. A trailing "/" is allowed and dropped.
func CleanPath(p string) (string, error) {
	const op = "ferry.CleanPath"
	if len(p) > MaxPathLen {
		return "", E(op, Invalid, "path is longer than 4096 bytes")
	}
	if !utf8.ValidString(p) {
		return "", E(op, Invalid, "path is not valid UTF-8")
	}
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "/", nil
	}
	p = strings.TrimSuffix(p, "/")
	elems := strings.Split(p, "/")
	for _, el := range elems {
		if err := ValidName(el); err != nil {
			return "", err
		}
	}
	return "/" + strings.Join(elems, "/"), nil
}

// ValidName reports whether name is acceptable as one file or folder name.
func ValidName(name string) error {
	const op = "ferry.ValidName"
	switch {
	case name == "":
		return E(op, Invalid, "path has an empty element")
	case name == "." || name == "..":
		return E(op, Invalid, "path may not contain \".\" or \"..\"")
	case len(name) > MaxNameLen:
		return E(op, Invalid, "a path element is longer than 255 bytes")
	case !utf8.ValidString(name):
		return E(op, Invalid, "path is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return E(op, Invalid, "path contains a control character")
		}
		if r == '\\' {
			return E(op, Invalid, "path contains a backslash")
		}
		if r == '/' {
			return E(op, Invalid, "name contains a slash")
		}
	}
	return nil
}

// SplitPath splits a clean path into its elements; the root has none.
func SplitPath(clean string) []string {
	if clean == "/" || clean == "" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(clean, "/"), "/")
}

// ParentPath returns the parent of a clean path and its last element. The
// parent of "/a" is "/".
func ParentPath(clean string) (parent, name string) {
	i := strings.LastIndexByte(clean, '/')
	if i <= 0 {
		return "/", clean[i+1:]
	}
	return clean[:i], clean[i+1:]
}
