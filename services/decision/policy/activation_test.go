package policy

import "testing"

// Every variable the rules may name resolves in the activation, to a value.
func TestActivationHasEveryVariable(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	act := &activation{}
	for _, v := range env.Variables() {
		if _, ok := act.ResolveName(v.Name()); !ok {
			t.Errorf("variable %q is not in the activation", v.Name())
		}
	}
	if _, ok := act.ResolveName("nope"); ok {
		t.Error("an undeclared name resolved")
	}
}
