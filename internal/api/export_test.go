package api

import (
	"net/netip"
	"time"
)

// SetAuthThrottle gives a a brute-force throttle that refuses a source
// after maxFails failures within a minute, for block.
func SetAuthThrottle(a *API, maxFails int, block time.Duration) {
	a.initThrottle.Do(func() {})
	a.throttle = &authThrottle{MaxFails: maxFails, Window: time.Minute, Block: block, sources: map[netip.Prefix]*failWindow{}}
}
