package duotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

func getLogs(t *testing.T, s *Server, params url.Values, sign bool) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+AuthLogsPath+"?"+params.Encode(), nil)
	if sign {
		date := time.Now().UTC().Format(time.RFC1123Z)
		req.Header.Set("Date", date)
		req.SetBasicAuth(s.IKey, signature(s.SKey, canonicalRequest(date, "GET", req.URL.Host, AuthLogsPath, params)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return resp.StatusCode, body
}

func logIDs(body map[string]any) ([]string, any) {
	resp, _ := body["response"].(map[string]any)
	logs, _ := resp["authlogs"].([]any)
	var ids []string
	for _, l := range logs {
		ids = append(ids, l.(map[string]any)["txid"].(string))
	}
	md, _ := resp["metadata"].(map[string]any)
	return ids, md["next_offset"]
}

func TestAuthLogsPaging(t *testing.T) {
	s := New()
	defer s.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		s.AddAuthLog(AuthLog(id, "alice@example.com", base.Add(time.Duration(i)*time.Second)))
	}
	s.AddAuthLog(AuthLog("late", "alice@example.com", base.Add(time.Hour)))
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	p := url.Values{"mintime": {ms(base.Add(time.Second))}, "maxtime": {ms(base.Add(time.Minute))}, "limit": {"2"}, "sort": {"ts:asc"}}

	var got []string
	for range 5 {
		status, body := getLogs(t, s, p, true)
		if status != 200 {
			t.Fatalf("%d %v", status, body)
		}
		ids, next := logIDs(body)
		got = append(got, ids...)
		if next == nil {
			break
		}
		off := next.([]any)
		if len(off) != 2 || off[1] != ids[len(ids)-1] {
			t.Fatalf("next_offset %v", off)
		}
		p.Set("next_offset", off[0].(string)+","+off[1].(string))
	}
	if want := []string{"b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("asc %v, want %v", got, want)
	}

	p.Del("next_offset")
	p.Del("sort") // Duo's default is newest first
	_, body := getLogs(t, s, p, true)
	if ids, _ := logIDs(body); !slices.Equal(ids, []string{"e", "d"}) {
		t.Fatalf("desc %v", ids)
	}

	for name, bad := range map[string]url.Values{
		"no maxtime":        {"mintime": p["mintime"]},
		"seconds":           {"mintime": {"1700000000"}, "maxtime": p["maxtime"]},
		"min not below max": {"mintime": p["maxtime"], "maxtime": p["maxtime"]},
		"limit over 1000":   {"mintime": p["mintime"], "maxtime": p["maxtime"], "limit": {"1001"}},
		"bad sort":          {"mintime": p["mintime"], "maxtime": p["maxtime"], "sort": {"asc"}},
		"bad next_offset":   {"mintime": p["mintime"], "maxtime": p["maxtime"], "next_offset": {"123"}},
	} {
		if status, _ := getLogs(t, s, bad, true); status != 400 {
			t.Errorf("%s: %d, want 400", name, status)
		}
	}
	if status, _ := getLogs(t, s, p, false); status != 401 {
		t.Errorf("unsigned: %d, want 401", status)
	}
	if n := len(s.AuthLogRequests()); n != 10 {
		t.Errorf("%d requests recorded, want 10", n)
	}
}
