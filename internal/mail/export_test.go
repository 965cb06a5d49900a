package mail

import "time"

// SetRetry shortens the retry policy for tests.
func SetRetry(o *Outbox, backoffMin, backoffMax, giveUp time.Duration) {
	o.backoffMin, o.backoffMax, o.giveUp = backoffMin, backoffMax, giveUp
}
