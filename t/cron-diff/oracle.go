// oracle.go -- robfig/cron v3.0.1 (Debian's golang-github-robfig-cron-dev) as the oracle of the
// differential test of conduix-cp's cron engine (t/cron-diff/diff.c).
//
// Built with Debian's Go in GOPATH mode, no network:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o robfig-oracle oracle.go
//
// Reads one case a line on stdin: ZONE TAB START TAB HEX, where ZONE is the zone to evaluate in (the
// expression's own CRON_TZ= prefix wins, as in robfig), START Unix seconds and HEX the expression's bytes
// in hexadecimal (so any byte can be tested). Writes one line a case:
//
//	ok T1 T2 ... Tn    the next n fire times (Unix seconds) chained from START; "never" for robfig's
//	                   zero time (nothing within five years), after which the chain stops
//	err MESSAGE        ParseStandard refused the expression
//	panic MESSAGE      ParseStandard panicked (e.g. "TZ=UTC" without a space)
//
// With -table it reads ZONE TAB START(RFC 3339) TAB EXPRESSION and prints the expected times in RFC 3339
// with the zone's offset, for the table of t/unit/test_cron.c.
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	cron "github.com/robfig/cron"
)

func parse(expr string) (s cron.Schedule, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("%v", r), true
		}
	}()
	s, err = cron.ParseStandard(expr)
	return s, err, false
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}

func main() {
	n := flag.Int("n", 5, "fire times per case")
	table := flag.Bool("table", false, "read RFC 3339 starts and plain expressions, print RFC 3339 times")
	flag.Parse()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	zones := map[string]*time.Location{}
	for in.Scan() {
		f := strings.SplitN(in.Text(), "\t", 3)
		if len(f) != 3 {
			fmt.Fprintf(os.Stderr, "oracle: bad input line %q\n", in.Text())
			os.Exit(2)
		}
		loc, ok := zones[f[0]]
		if !ok {
			var err error
			if loc, err = time.LoadLocation(f[0]); err != nil {
				fmt.Fprintf(os.Stderr, "oracle: zone %s: %v\n", f[0], err)
				os.Exit(2)
			}
			zones[f[0]] = loc
		}
		var t time.Time
		var expr string
		if *table {
			var err error
			if t, err = time.Parse(time.RFC3339, f[1]); err != nil {
				fmt.Fprintf(os.Stderr, "oracle: start %s: %v\n", f[1], err)
				os.Exit(2)
			}
			expr = f[2]
		} else {
			sec, err1 := strconv.ParseInt(f[1], 10, 64)
			b, err2 := hex.DecodeString(f[2])
			if err1 != nil || err2 != nil {
				fmt.Fprintf(os.Stderr, "oracle: bad input line %q\n", in.Text())
				os.Exit(2)
			}
			t, expr = time.Unix(sec, 0), string(b)
		}
		t = t.In(loc)
		s, err, panicked := parse(expr)
		switch {
		case panicked:
			fmt.Fprintf(out, "panic %s\n", clean(err.Error()))
			continue
		case err != nil:
			fmt.Fprintf(out, "err %s\n", clean(err.Error()))
			continue
		}
		fmt.Fprint(out, "ok")
		for i := 0; i < *n; i++ {
			t = s.Next(t)
			if t.IsZero() {
				fmt.Fprint(out, " never")
				break
			}
			if *table {
				fmt.Fprintf(out, " %s", t.In(loc).Format(time.RFC3339))
			} else {
				fmt.Fprintf(out, " %d", t.Unix())
			}
		}
		fmt.Fprintln(out)
	}
}
