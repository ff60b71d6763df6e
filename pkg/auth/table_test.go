package auth_test

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
)

// What every server registers besides its services (health, reflection)
// has a rule of its own.
func TestServerMethodsHaveARule(t *testing.T) {
	rules := auth.ServerRules()
	srv := rpc.NewServer(rpc.ServerOptions{})
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			if _, ok := rules["/"+svc+"/"+m.Name]; !ok {
				t.Errorf("the server registers /%s/%s, which has no rule", svc, m.Name)
			}
		}
	}
	if len(srv.GetServiceInfo()) == 0 {
		t.Fatal("the server registers nothing")
	}
}
