package formats

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/userid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// userRecords are one record per format with the user id left as %s, and
// the field path that holds it.
var userRecords = []struct {
	format Format
	record string
	field  string
}{
	{Okta, `{"uuid":"u1","published":"2024-05-01T02:00:00Z","eventType":"system.push.send_factor_verify_push","actor":{"id":"00u1","type":"User","alternateId":"%s"},"outcome":{"result":"SUCCESS"}}`, "actor.alternateId"},
	{Okta, `{"uuid":"u2","published":"2024-05-01T02:00:00Z","eventType":"system.push.send_factor_verify_push","actor":{"id":"%s","type":"User"},"outcome":{"result":"SUCCESS"}}`, "actor.id"},
	{Okta, `{"uuid":"u3","published":"2024-05-01T02:00:00Z","eventType":"user.mfa.factor.activate","actor":{"id":"00uadmin","type":"SystemPrincipal"},"target":[{"type":"User","alternateId":"%s"}],"outcome":{"result":"SUCCESS"}}`, "target[0].alternateId"},
	{Entra, `{"category":"SignInLogs","properties":{"id":"s1","createdDateTime":"2024-05-01T02:00:00Z","userPrincipalName":"%s","status":{"errorCode":0}}}`, "properties.userPrincipalName"},
	{Duo, `{"txid":"t1","isotimestamp":"2024-05-01T02:00:00+00:00","event_type":"authentication","factor":"duo_push","result":"success","user":{"name":"%s"}}`, "user.name"},
	{Auth0, `{"log_id":"l1","date":"2024-05-01T02:00:00Z","type":"s","user_id":"%s"}`, "user_id"},
	{PingID, `{"id":"p1","recorded":"2024-05-01T02:00:00Z","action":"AUTHENTICATION","actors":[{"type":"user","name":"%s"}],"result":{"status":"SUCCESS"}}`, "actors[0].name"},
	{OCSF, `{"class_uid":3002,"activity_id":1,"status_id":1,"time":1714528800000,"metadata":{"uid":"o1"},"user":{"name":"%s"}}`, "user.name"},
	{Native, `{"eventId":"n1","userId":"%s","type":"EVENT_TYPE_PUSH_SENT","time":"2024-05-01T02:00:00Z"}`, "userId"},
}

// TestInvalidUTF8InAUserIDIsRefused: encoding/json replaces a byte that is
// not UTF-8, and a lone surrogate escape, with U+FFFD without a word. A user
// id so replaced is another user (and two spellings that differ only there
// become one); the record is refused instead, naming the field.
func TestInvalidUTF8InAUserIDIsRefused(t *testing.T) {
	for _, tt := range userRecords {
		t.Run(string(tt.format)+"/"+tt.field, func(t *testing.T) {
			clean, err := Parse(tt.format, fmt.Appendf(nil, tt.record, "bob"), Options{})
			if err != nil || len(clean.Events) == 0 || clean.Events[0].GetUserId() != "bob" {
				t.Fatalf("the clean record: %v, %v", clean.Events, err)
			}
			for name, bad := range map[string]string{
				"raw byte":                "bob\xff",
				"lone low surrogate":      `bob\udc00`,
				"lone high surrogate":     `bob\ud800`,
				"reversed surrogates":     `bob\udc00\ud800`,
				"high then non-surrogate": `bob\ud800\u0041`,
			} {
				b, err := Parse(tt.format, fmt.Appendf(nil, tt.record, bad), Options{})
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("%s: Parse = %v, %v; want InvalidArgument", name, b.Events, err)
				}
				fields := apierr.Fields(err)
				if !slices.ContainsFunc(fields, func(f string) bool { return strings.HasSuffix(f, tt.field) }) {
					t.Fatalf("%s: violations name %v, want %s", name, fields, tt.field)
				}
			}
			// A surrogate pair is one valid character, not an error.
			pair, err := Parse(tt.format, fmt.Appendf(nil, tt.record, `bob\ud83d\ude00`), Options{})
			if err != nil || len(pair.Events) == 0 || pair.Events[0].GetUserId() != "bob😀" {
				t.Fatalf("a surrogate pair: %v, %v", pair.Events, err)
			}
		})
	}
}

func TestInvalidTextNamesTheField(t *testing.T) {
	tests := []struct {
		raw, path string
		bad       bool
	}{
		{`{"a":"plain","b":[1,"two",{"c":null}]}`, "", false},
		{`{"a":"caf\u00e9 \ud83d\ude00 \ufffd ` + "\u00e9" + `"}`, "", false},
		{`{"a":"\\ud800 is text: the backslash is escaped"}`, "", false},
		{`{"a":"\\\ud800"}`, "a", true},
		{"{\"a\":{\"b\":[\"x\",\"y\xc3\"]}}", "a.b[1]", true},
		{`{"a":[{"b":1},{"c":"\udfff"}]}`, "a[1].c", true},
		{"{\"k\xff\":1}", "", true},
		{"[\"\xff\"]", "[0]", true},
		{`{"a":"\ud800`, "a", true}, // not JSON either, but the string is refused first
		{"{\"a\":\"\xff", "a", true},
		{`{"a":`, "", false}, // not JSON: the codec says so
	}
	for _, tt := range tests {
		path, bad := invalidText([]byte(tt.raw))
		if path != tt.path || bad != tt.bad {
			t.Errorf("invalidText(%q) = %q, %v; want %q, %v", tt.raw, path, bad, tt.path, tt.bad)
		}
	}
}

func TestUserIDRuleOption(t *testing.T) {
	rec := func(user string) []byte {
		return fmt.Appendf(nil, `{"eventId":"n1","userId":%q,"type":"EVENT_TYPE_PUSH_SENT","time":"2024-05-01T02:00:00Z"}`, user)
	}
	b, err := Parse(Native, rec("ＢＯＢ"), Options{})
	if err != nil || b.Events[0].GetUserId() != "ＢＯＢ" {
		t.Fatalf("without rules the id is kept as spelled: %v, %v", b.Events, err)
	}
	rules := userid.NewRules(userid.Fold, nil)
	b, err = Parse(Native, rec("ＢＯＢ"), Options{UserIDs: rules})
	if err != nil || b.Events[0].GetUserId() != "bob" || b.Events[0].GetRawUserId() != "ＢＯＢ" {
		t.Fatalf("with rules: %v, %v", b.Events, err)
	}
	// An export read back keeps the spelling it recorded.
	b, err = Parse(Native, []byte(`{"eventId":"n1","userId":"bob","rawUserId":"Bob","type":"EVENT_TYPE_PUSH_SENT","time":"2024-05-01T02:00:00Z"}`), Options{UserIDs: rules})
	if err != nil || b.Events[0].GetUserId() != "bob" || b.Events[0].GetRawUserId() != "Bob" {
		t.Fatalf("an export: %v, %v", b.Events, err)
	}
	_, err = Parse(Native, rec("\u3000"), Options{UserIDs: rules})
	if fields := apierr.Fields(err); !slices.Equal(fields, []string{"[0].user"}) {
		t.Fatalf("a white-space id: %v (fields %v), want a violation of [0].user", err, fields)
	}
}
