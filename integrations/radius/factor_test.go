package radius

import (
	"testing"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

func TestSplitFactor(t *testing.T) {
	for _, tc := range []struct {
		password, base string
		factor         eventv1.Factor
	}{
		{"correct-horse", "correct-horse", eventv1.Factor_FACTOR_PUSH},
		{"correct-horse,push", "correct-horse", eventv1.Factor_FACTOR_PUSH},
		{"correct-horse,PUSH2", "correct-horse", eventv1.Factor_FACTOR_PUSH},
		{"correct-horse,phone", "correct-horse", eventv1.Factor_FACTOR_VOICE},
		{"correct-horse,phone2", "correct-horse", eventv1.Factor_FACTOR_VOICE},
		{"correct-horse,sms", "correct-horse", eventv1.Factor_FACTOR_SMS},
		{"correct-horse,123456", "correct-horse", eventv1.Factor_FACTOR_TOTP},
		{"a,b,123456", "a,b", eventv1.Factor_FACTOR_TOTP},
		{"correct-horse,cccccbhuinjdrtjlfutlvtnrnhgtrtkn", "correct-horse", eventv1.Factor_FACTOR_TOTP},
		// A comma that is part of the password leaves it whole.
		{"horse,battery", "horse,battery", eventv1.Factor_FACTOR_PUSH},
		{"horse,123", "horse,123", eventv1.Factor_FACTOR_PUSH},
		{"horse,push123", "horse,push123", eventv1.Factor_FACTOR_PUSH},
		{"horse,12 34", "horse,12 34", eventv1.Factor_FACTOR_PUSH},
		{",", ",", eventv1.Factor_FACTOR_PUSH},
	} {
		base, factor := splitFactor([]byte(tc.password), ',')
		if string(base) != tc.base || factor != tc.factor {
			t.Errorf("splitFactor(%q) = %q, %v; want %q, %v", tc.password, base, factor, tc.base, tc.factor)
		}
	}
}

func TestPasscodeOf(t *testing.T) {
	for in, want := range map[string]string{
		"123456":                           "123456",
		" 123 456 ":                        "123456",
		"0000":                             "0000",
		"1234567890123456":                 "1234567890123456",
		"cccccbhuinjdrtjlfutlvtnrnhgtrtkn": "cccccbhuinjdrtjlfutlvtnrnhgtrtkn",
		// Not passcodes: factor words, too short or long, mixed.
		"push":              "",
		"phone":             "",
		"sms":               "",
		"123":               "",
		"12345678901234567": "",
		"12a456":            "",
		"":                  "",
		"123,456":           "",
	} {
		got, ok := passcodeOf([]byte(in))
		if string(got) != want || ok != (want != "") {
			t.Errorf("passcodeOf(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
