// Package fence holds no code: its tests keep Ferry's import graph the shape
// that STYLE.md and DESIGN.md describe.
//
// They guarantee that
//   - the server binary (./cmd/ferry and everything it links) imports none of
//     os/exec, encoding/gob, encoding/xml, net/rpc or plugin, except through
//     the few reviewed third-party packages listed in the test;
//   - no package of ours imports those directly;
//   - imports among Ferry's own packages point inward, as a table of package →
//     allowed imports, so that every new package and every new edge between
//     packages is added to the table deliberately;
//   - test helpers (ferrytest, dbtest, blobtest) and the testing package are
//     never linked into the server.
package fence
