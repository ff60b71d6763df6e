package notify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"google.golang.org/protobuf/proto"
)

// ReportURLAttribute is the attribute that carries the one-click report
// link of a user notice to the channels. It is minted at delivery time and
// never stored.
const ReportURLAttribute = "report_url"

// outgoing is the delivery as a channel sees it: a user notice gets its
// text and its report link, an alert its incident summary. The stored
// delivery is not changed.
func (s *Service) outgoing(d *notifyv1.Delivery) *notifyv1.Delivery {
	n := d.GetNotification()
	if n.GetKind() != notifyv1.Kind_KIND_USER_NOTICE || s.opts.ReportLinks == nil {
		return d
	}
	out := proto.Clone(d).(*notifyv1.Delivery)
	nonce := d.GetIncident().GetIncidentId()
	if nonce == "" {
		nonce = d.GetDeliveryId()
	}
	link := s.opts.ReportLinks.URL(ReportClaims{Tenant: n.GetTenant(), UserID: n.GetUserId(), Nonce: nonce}, s.opts.Now())
	attrs := maps.Clone(n.GetAttributes())
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs[ReportURLAttribute] = link
	out.Notification.Attributes = attrs
	return out
}

// Render returns the subject and plain text of a delivery, as email and
// Slack show it.
func Render(d *notifyv1.Delivery) (subject, text string) {
	n := d.GetNotification()
	inc := d.GetIncident()
	count := max(inc.GetCount(), 1)
	var b strings.Builder
	switch n.GetKind() {
	case notifyv1.Kind_KIND_USER_NOTICE:
		subject = n.GetTitle()
		if subject == "" {
			subject = fmt.Sprintf("We blocked %s you did not start", plural(count, "push request"))
		}
		if n.GetMessage() != "" {
			b.WriteString(n.GetMessage())
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "We blocked %s to your account", plural(count, "push request"))
		if inc != nil {
			fmt.Fprintf(&b, " between %s and %s", stamp(inc.GetFirstTime().AsTime()), stamp(inc.GetLastTime().AsTime()))
		}
		b.WriteString(". Someone who knows your password may be trying to sign in as you, hoping you tap Approve.\n\n")
		if link := n.GetAttributes()[ReportURLAttribute]; link != "" {
			b.WriteString("If you did not try to sign in, report it with one click, then change your password:\n\n")
			b.WriteString(link)
			b.WriteString("\n\n")
		} else {
			b.WriteString("If you did not try to sign in, tell your security team and change your password.\n\n")
		}
		b.WriteString("If it was you, you can ignore this message. Never approve a push request you did not start.\n")
		return subject, b.String()
	case notifyv1.Kind_KIND_SOC_ALERT:
		subject = n.GetTitle()
		if subject == "" {
			subject = "Push denied for " + n.GetUserId()
		}
		if count > 1 {
			subject = fmt.Sprintf("%s (%s blocked in this incident)", subject, plural(count, "push"))
		}
	default:
		subject = n.GetTitle()
		if subject == "" {
			subject = strings.ToLower(strings.TrimPrefix(n.GetKind().String(), "KIND_"))
		}
	}
	if n.GetMessage() != "" {
		b.WriteString(n.GetMessage())
		b.WriteString("\n\n")
	}
	if inc != nil {
		fmt.Fprintf(&b, "Incident %s: %s for user %s from %s to %s.\n", inc.GetIncidentId(), plural(count, "blocked push"),
			n.GetUserId(), stamp(inc.GetFirstTime().AsTime()), stamp(inc.GetLastTime().AsTime()))
	}
	if n.GetTenant() != "" {
		fmt.Fprintf(&b, "tenant: %s\n", n.GetTenant())
	}
	if n.GetUserId() != "" {
		fmt.Fprintf(&b, "user: %s\n", n.GetUserId())
	}
	for _, k := range slices.Sorted(maps.Keys(n.GetAttributes())) {
		fmt.Fprintf(&b, "%s: %s\n", k, n.GetAttributes()[k])
	}
	if n.GetDecisionId() != "" {
		fmt.Fprintf(&b, "decision: %s\n", n.GetDecisionId())
	}
	if n.GetTraceId() != "" {
		fmt.Fprintf(&b, "trace: %s\n", n.GetTraceId())
	}
	return subject, b.String()
}

func plural(n int32, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "sh") || strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
