package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const incidentsUsage = `Usage: pushback incidents list    [flags] [--tenant T] [--user U]
       pushback incidents show    [flags] INCIDENT_ID
       pushback incidents release [flags] --tenant T [DELIVERY_ID ...]

Reads the incidents of a running mesh: one per user and attack, with every
alert it raised and every response action (revoke sessions, ...) with what
was done and its result. "release" lets response actions that the brake
(--respond-brake) held go out: every held action of the tenant, or those
named.

Flags:
`

func incidentsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show" && args[0] != "release") {
		fmt.Fprint(stderr, incidentsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("incidents "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, incidentsUsage); fs.PrintDefaults() }
	addr := fs.String("addr", envOr(getenv, "PUSHBACK_ADDR", "127.0.0.1:50051"), "gRPC address of the notification service (env PUSHBACK_ADDR)")
	cf := addClientFlags(fs, getenv, "an operator token (--operator-tokens of the mesh)", false)
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the call")
	tenant := fs.String("tenant", "", "only this tenant (required by release)")
	user := fs.String("user", "", "only this user (list; needs --tenant when the mesh has tenants)")
	limit := fs.Int("limit", 50, "incidents to list, newest first (at most 500)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		if st, ok := status.FromError(err); ok {
			fmt.Fprintf(stderr, "pushback incidents %s: %s: %s\n", verb, st.Code(), st.Message())
		} else {
			fmt.Fprintf(stderr, "pushback incidents %s: %v\n", verb, err)
		}
		return 1
	}
	switch {
	case verb == "show" && fs.NArg() != 1, verb == "list" && fs.NArg() != 0:
		fs.Usage()
		return 2
	case verb == "release" && *tenant == "" && fs.NArg() == 0:
		fmt.Fprintln(stderr, "pushback incidents release: name the --tenant whose held actions go out (and optionally the deliveries)")
		return 2
	case *limit < 1 || *limit > 500:
		fmt.Fprintln(stderr, "pushback incidents: --limit must be between 1 and 500")
		return 2
	}
	creds, tlsCreds, err := cf.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "pushback incidents: %v\n", err)
		return 2
	}
	conn, err := rpc.Dial(*addr, rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{creds.UnaryClientInterceptor()}, Creds: tlsCreds})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	nc := notifyv1.NewNotificationServiceClient(conn)
	switch verb {
	case "list":
		resp, err := nc.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{Tenant: *tenant, UserId: *user, PageSize: int32(*limit)})
		if err != nil {
			return fail(err)
		}
		if *asJSON {
			return writeJSON(stdout, stderr, resp)
		}
		if len(resp.GetIncidents()) == 0 {
			fmt.Fprintln(stdout, "no incidents")
			return 0
		}
		fmt.Fprintf(stdout, "%-26s  %-20s  %-24s  %5s  %-30s  %s\n", "INCIDENT", "LAST", "USER", "COUNT", "RULES", "SIGNALS")
		for _, in := range resp.GetIncidents() {
			u := in.GetUserId()
			if in.GetTenant() != "" {
				u = in.GetTenant() + "/" + u
			}
			fmt.Fprintf(stdout, "%-26s  %-20s  %-24s  %5d  %-30s  %s\n", in.GetIncidentId(), in.GetLastTime().AsTime().UTC().Format(time.DateTime),
				u, in.GetCount(), orNone(strings.Join(in.GetRules(), ",")), orNone(strings.Join(in.GetSignals(), ",")))
		}
	case "show":
		resp, err := nc.GetIncident(ctx, &notifyv1.GetIncidentRequest{IncidentId: fs.Arg(0)})
		if err != nil {
			return fail(err)
		}
		if *asJSON {
			return writeJSON(stdout, stderr, resp)
		}
		writeIncident(stdout, resp)
	case "release":
		resp, err := nc.ReleaseActions(ctx, &notifyv1.ReleaseActionsRequest{Tenant: *tenant, DeliveryIds: fs.Args()})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "released %d held actions\n", len(resp.GetDeliveryIds()))
		for _, id := range resp.GetDeliveryIds() {
			fmt.Fprintln(stdout, "  "+id)
		}
	}
	return 0
}

func writeJSON(stdout, stderr io.Writer, m proto.Message) int {
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
	if err != nil {
		fmt.Fprintf(stderr, "pushback incidents: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(b))
	return 0
}

// writeIncident explains an incident: what happened, what was done, what
// came of it.
func writeIncident(w io.Writer, resp *notifyv1.GetIncidentResponse) {
	in := resp.GetIncident()
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("Incident %s", in.GetIncidentId())
	u := in.GetUserId()
	if in.GetTenant() != "" {
		u += " (tenant " + in.GetTenant() + ")"
	}
	p("  user     %s", u)
	p("  from     %s", in.GetFirstTime().AsTime().UTC().Format(time.RFC3339))
	p("  to       %s (%d notifications folded in)", in.GetLastTime().AsTime().UTC().Format(time.RFC3339), in.GetCount())
	p("  rules    %s", orNone(strings.Join(in.GetRules(), ", ")))
	p("  signals  %s", orNone(strings.Join(in.GetSignals(), ", ")))
	p("")
	var actions, others []*notifyv1.Delivery
	for _, d := range resp.GetDeliveries() {
		if len(d.GetNotification().GetResponseActions()) > 0 && d.GetNotification().GetKind() != notifyv1.Kind_KIND_SOC_ALERT {
			actions = append(actions, d)
		} else {
			others = append(others, d)
		}
	}
	p("Actions")
	if len(actions) == 0 {
		p("  none")
	}
	for _, d := range actions {
		a := d.GetNotification().GetResponseActions()[0]
		p("  %s at %s (rule %s): %s", a.GetAction(), d.GetChannel(), orNone(a.GetRule()), deliveryState(d))
		if d.GetResult() != "" {
			p("    result: %s", d.GetResult())
		}
		if d.GetLastError() != "" {
			p("    error:  %s", d.GetLastError())
		}
	}
	p("")
	p("Alerts and notices")
	if len(others) == 0 {
		p("  none")
	}
	for _, d := range others {
		p("  %s on %s: %s  %s", strings.ToLower(strings.TrimPrefix(d.GetNotification().GetKind().String(), "KIND_")), d.GetChannel(), deliveryState(d), d.GetNotification().GetTitle())
	}
}

func deliveryState(d *notifyv1.Delivery) string {
	s := strings.ToLower(strings.TrimPrefix(d.GetStatus().String(), "STATUS_"))
	switch d.GetStatus() {
	case notifyv1.Status_STATUS_DELIVERED:
		s = "done " + d.GetDeliverTime().AsTime().UTC().Format(time.RFC3339)
	case notifyv1.Status_STATUS_PENDING:
		s = fmt.Sprintf("pending (attempt %d, next %s)", d.GetAttempts(), d.GetNextAttemptTime().AsTime().UTC().Format(time.RFC3339))
	case notifyv1.Status_STATUS_HELD:
		s = "HELD by the brake: pushback incidents release --tenant T " + d.GetDeliveryId()
	case notifyv1.Status_STATUS_DEAD:
		s = fmt.Sprintf("FAILED after %d attempts", d.GetAttempts())
	}
	return s
}
