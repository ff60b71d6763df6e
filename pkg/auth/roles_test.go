package auth

import "testing"

// Each role has a bit of its own, so a set never confuses two roles, and
// the table names only known roles.
func TestEveryRoleHasItsOwnBit(t *testing.T) {
	var all roleSet
	for _, r := range Roles() {
		b := r.bit()
		if b == 0 || all&b != 0 {
			t.Errorf("role %s has bit %b (taken: %b)", r, b, all)
		}
		all |= b
	}
	if Role("admin").bit() != 0 {
		t.Error("an unknown role has a bit")
	}
	for m, r := range ServerRules() {
		for _, role := range r.Roles {
			if role.bit() == 0 {
				t.Errorf("%s names the unknown role %q", m, role)
			}
		}
	}
	if got := setOf(Hook, Operator).String(); got != "hook,operator" {
		t.Errorf("String = %q", got)
	}
}
