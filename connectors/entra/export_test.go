package entra

import "time"

// SetLogClock sets the clock a LogSource clamps since to the retention by.
func SetLogClock(s *LogSource, now func() time.Time) { s.now = now }

// MaxBodyLine is the line bound a page is indented past.
const MaxBodyLine = maxBodyLine
