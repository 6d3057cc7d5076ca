package host

import (
	"bufio"
	"fmt"
	"strings"
)

// Certificate rotation at runtime: a certificate bundle that the running
// HAProxy has loaded (a bind's crt) gets new content without a reload.
// The change script stages the new file, checks it with the config,
// keeps the live one as last-good and swaps it in place, as for a reload;
// then, in the runtime step:
//
//	set ssl cert PATH <<      the payload: the swapped file, read on the host
//	commit ssl cert PATH
//
// and runtime-verify asks `show ssl cert PATH` for lbc to compare with the
// new file (serial, SHA-1 fingerprint, notAfter: ParseShowCert). The
// runtime step asks the same before the set (Runtime.Before), so that
// after a rollback lbc compares what runs with what ran. txn.sh, having
// restored the file from last-good, aborts any transaction left open (a
// commit that failed leaves one), sets the restored file and commits.
//
// The payload never travels as a word of the script: lbc_rtf (rtFileFunc)
// reads it from the file on the host into the here-document that goes to
// the stats socket, dropping empty lines (the end of HAProxy's payload).
// What fails prints the command and HAProxy's answer, not the payload.

// Answers of HAProxy 2.6 to the certificate commands (seen on 2.6.12).
const (
	answerCertSet     = "Transaction created for certificate"
	answerCertUpdated = "Transaction updated for certificate"
	answerCommitted   = "Success!"
	answerAborted     = "Transaction aborted for certificate"
	answerNoTxn       = "No ongoing transaction"
)

// ShowCertQuery is the query that shows the certificate HAProxy runs
// from path.
func ShowCertQuery(path string) string { return "show ssl cert " + path }

// AddCertRotation adds to r the rotation of the certificate at path: do
// set + commit, undo abort + set (from the restored file) + commit, the
// query before and after. The undo commands run first in txn.sh (they
// undo the last change: certificates follow the server operations).
func (r *Runtime) AddCertRotation(path string) error {
	set := RuntimeCmd{Line: "set ssl cert " + path, PayloadFile: path, OK: []string{answerCertSet, answerCertUpdated}}
	commit := RuntimeCmd{Line: "commit ssl cert " + path, OK: []string{answerCommitted}}
	abort := RuntimeCmd{Line: "abort ssl cert " + path, OK: []string{answerAborted, answerNoTxn}}
	r.Do = append(r.Do, set, commit)
	r.Undo = append([]RuntimeCmd{abort, set, commit}, r.Undo...)
	r.Before = append(r.Before, ShowCertQuery(path))
	r.ReadBack = append(r.ReadBack, ShowCertQuery(path))
	return checkRuntime(r)
}

// rtFileFunc defines lbc_rtf SOCKET CMD FILE [OK...]: lbc_rt with the
// payload read from FILE on the host, its empty lines left out (HAProxy
// ends a payload at an empty line; PEM does not need them). The loop is
// the shell's own (no process). "" when no command of cs has a
// PayloadFile.
func rtFileFunc(cs []RuntimeCmd) string {
	for _, c := range cs {
		if c.PayloadFile != "" {
			return `lbc_rtf() { lbc_f=$3
  lbc_p=$(while IFS= read -r lbc_l || [ -n "$lbc_l" ]; do if [ -n "$lbc_l" ]; then printf '%s\n' "$lbc_l"; fi; done < "$lbc_f") ||
    { printf 'stats socket: %s: cannot read %s\n' "$2" "$lbc_f" >&2; return 1; }
  lbc_s=$1; lbc_c=$2; shift 3; lbc_rt "$lbc_s" "$lbc_c" "$lbc_p" "$@"; }
`
		}
	}
	return ""
}

// CertFacts is what `show ssl cert PATH` says of the certificate that
// runs.
type CertFacts struct {
	Serial   string // hex, upper case, leading zeros dropped
	NotAfter string // as HAProxy prints it: "Jan  1 13:38:42 2027 GMT"
	SHA1     string // SHA-1 fingerprint, hex, upper case
}

func (f CertFacts) String() string {
	return fmt.Sprintf("serial %s, sha1 %s, notAfter %s", f.Serial, f.SHA1, f.NotAfter)
}

// ParseShowCert reads the answer to `show ssl cert PATH`: it needs the
// serial and the SHA-1 fingerprint; anything else (a refusal: "Can't
// display the certificate") is an error quoting at most 80 bytes.
func ParseShowCert(answer string) (CertFacts, error) {
	var f CertFacts
	sc := bufio.NewScanner(strings.NewReader(answer))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Serial":
			f.Serial = NormSerial(v)
		case "notAfter":
			f.NotAfter = v
		case "SHA1 FingerPrint":
			f.SHA1 = strings.ToUpper(v)
		}
	}
	if f.Serial == "" || f.SHA1 == "" {
		return f, fmt.Errorf("show ssl cert: no serial or fingerprint in the answer %.80q", termSafe(answer))
	}
	return f, nil
}

// NormSerial writes a hex serial as ParseShowCert compares it.
func NormSerial(hex string) string {
	s := strings.TrimLeft(strings.ToUpper(hex), "0")
	if s == "" && hex != "" {
		return "0"
	}
	return s
}

// termSafe replaces bytes that are not printable ASCII (a host's answer).
func termSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}
