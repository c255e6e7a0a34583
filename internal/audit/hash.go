package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// hashVersion starts the hashed encoding, so that a later encoding can be
// told apart.
const hashVersion = "gantry-audit-v1"

// ComputeHash returns the hex SHA-256 of ev's canonical encoding: the
// netstring ("<length>:<bytes>,") of hashVersion, then of each of PrevHash,
// Seq and At (decimal: nanoseconds since the Unix epoch), Actor, the number
// of Roles followed by each role, SourceIP, RequestID, Action, SubjectType,
// SubjectID, Space, Change (as stored) and Outcome. Netstrings make the
// encoding unambiguous: no two different events encode alike. The stored
// Hash itself is not part of it.
func (ev Event) ComputeHash() string {
	h := sha256.New()
	put := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
		h.Write([]byte{','})
	}
	put(hashVersion)
	put(ev.PrevHash)
	put(strconv.FormatInt(ev.Seq, 10))
	put(strconv.FormatInt(ev.At.UnixNano(), 10))
	put(ev.Actor)
	put(strconv.Itoa(len(ev.Roles)))
	for _, r := range ev.Roles {
		put(r)
	}
	put(ev.SourceIP)
	put(ev.RequestID)
	put(ev.Action)
	put(ev.SubjectType)
	put(ev.SubjectID)
	put(ev.Space)
	put(string(ev.Change))
	put(ev.Outcome)
	return hex.EncodeToString(h.Sum(nil))
}
