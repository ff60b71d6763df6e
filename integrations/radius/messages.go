package radius

// What the gate tells the user in Reply-Message. A VPN shows it on the
// login screen: every answer the gate makes itself says why and whether a
// push was sent.
const (
	msgDenied             = "Sign-in blocked by Pushback: %s. No push was sent to your phone."
	msgCooldown           = " Push sign-in is paused for %s."
	msgPhishingResistant  = "Push sign-in is not allowed right now: %s. No push was sent to your phone. Sign in with a security key or smart card instead."
	msgNumberMatch        = "No push was sent (%s). Enter the one-time passcode shown in your authenticator app."
	msgNumberMatchReject  = "No push was sent to your phone: %s. Try again later, or contact your help desk."
	msgUncheckedClosed    = "No push was sent to your phone: the sign-in could not be checked for push bombing (the Pushback decision service did not answer). Try again shortly."
	msgUncheckedOpen      = "Note: this sign-in was not checked for push bombing (the Pushback decision service did not answer)."
	msgNotChecked         = "No push was sent to your phone: the sign-in could not be checked for push bombing. Contact your help desk."
	msgUpstreamTimeout    = "The MFA service did not answer in time. Sign in again."
	msgUpstreamDown       = "No push was sent to your phone: the MFA service could not be reached. Try again shortly."
	msgUpstreamUnverified = "The MFA service's answer could not be verified. Contact your help desk."
	msgNoUser             = "The sign-in request carried no user name. No push was sent."
	msgPAPOnly            = "This sign-in method is not supported by the MFA gate (it takes a password, PAP). No push was sent."
	msgPasswordTooLong    = "The password is too long for RADIUS (at most 128 bytes). No push was sent."
	msgPromptExpired      = "The passcode prompt expired or was already answered. Sign in again."
	msgBadPasscode        = "That is not a passcode: enter the digits shown in your authenticator app. Sign in again."
	msgTooManyPending     = "Too many sign-ins are waiting for a passcode. No push was sent. Try again shortly."
	msgInternal           = "The MFA gate could not answer this sign-in. No push was sent."
)
