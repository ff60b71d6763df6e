package radius

import (
	"bytes"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// Passcode lengths: authenticator apps and tokens show 6 to 8 digits; Duo
// bypass codes have 9 or 10; a YubiKey OTP is 32 to 48 modhex letters.
const (
	minPasscodeDigits = 4
	maxPasscodeDigits = 16
	minModhex         = 32
	maxModhex         = 48
)

// splitFactor reads the factor a user appended to the password, as the Duo
// Authentication Proxy does in its append mode: "password,push",
// "password,phone2", "password,sms", "password,123456". It returns the
// password without the factor and the factor the MFA proxy will use: a
// passcode is FACTOR_TOTP and sends no push, "phone" is a call, "sms" sends
// passcodes by text; anything else (no delimiter, or one that is part of
// the password) is a push, the MFA proxy's default. The gate reads the
// password the way the MFA proxy will, so that the decision is about what
// the proxy is about to do.
func splitFactor(password []byte, delim byte) ([]byte, eventv1.Factor) {
	i := bytes.LastIndexByte(password, delim)
	if i < 0 {
		return password, eventv1.Factor_FACTOR_PUSH
	}
	base, suffix := password[:i], string(password[i+1:])
	if _, ok := passcodeOf([]byte(suffix)); ok && !strings.ContainsRune(suffix, ' ') {
		return base, eventv1.Factor_FACTOR_TOTP
	}
	word := strings.ToLower(suffix)
	name := strings.TrimRight(word, "0123456789")
	if len(word)-len(name) > 2 {
		return password, eventv1.Factor_FACTOR_PUSH
	}
	switch name {
	case "push":
		return base, eventv1.Factor_FACTOR_PUSH
	case "phone":
		return base, eventv1.Factor_FACTOR_VOICE
	case "sms":
		return base, eventv1.Factor_FACTOR_SMS
	}
	return password, eventv1.Factor_FACTOR_PUSH
}

// passcodeOf returns the one-time passcode in s (spaces between digit
// groups removed), or false when s is not one: digits only, or a YubiKey
// OTP. A factor word ("push", "phone", "sms") is never a passcode, so that
// the answer to a passcode prompt cannot ask the MFA proxy for a push.
func passcodeOf(s []byte) ([]byte, bool) {
	code := bytes.ReplaceAll(bytes.TrimSpace(s), []byte(" "), nil)
	switch {
	case len(code) >= minPasscodeDigits && len(code) <= maxPasscodeDigits && all(code, isDigit):
		return code, true
	case len(code) >= minModhex && len(code) <= maxModhex && all(code, isModhex):
		return code, true
	}
	return nil, false
}

func all(b []byte, ok func(byte) bool) bool {
	for _, c := range b {
		if !ok(c) {
			return false
		}
	}
	return true
}

// isModhex reports whether c is a letter of YubiKey's modhex alphabet.
func isModhex(c byte) bool { return strings.IndexByte("cbdefghijklnrtuv", c) >= 0 }
