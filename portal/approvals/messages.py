"""What the approvals pages say to people: named so that tests reuse the same words."""

REQUESTED = "Change requested: it waits for approval."
REQUESTED_AND_DONE = (
    "Done at once: this kind of change needs no approval (it is reviewed afterwards)."
)
APPROVED_VOTE = "Your approval was recorded; the change waits for another approver."
APPROVED_AND_DONE = "Approved and done: Kraken accepted the change."
APPROVED_FOR_REQUESTER = "Approved. The requester can now carry out the change until {deadline}."
REJECTED = "Rejected: the change will not be made."
WITHDRAWN = "Request withdrawn."
EXECUTED = "Done: Kraken accepted the change."
RECONCILED_DONE = "Kraken shows the change in force: the request is done."
RECONCILED_RESENT = "Kraken had not made the change; it was sent again, once."
STILL_UNKNOWN = (
    "Kraken could not confirm whether the change was made. Nothing was sent again; "
    "try reconciling again shortly."
)
OUTCOME_UNKNOWN = (
    "Kraken did not answer in time, so the outcome is unknown. Nothing will be sent again "
    "until Kraken has been asked what happened (Reconcile)."
)
VOIDED = "The target changed since the request, so the request is void: {reason}"
WAITING = "Approved; it will be sent by itself when {reason}."
CHOOSE_REQUESTS = "Tick the requests to approve."
ALREADY_RUNNING = "This change is already being carried out or was carried out; nothing was sent."

NOT_PENDING = "This request is no longer waiting for approval ({state})."
EXPIRED = "This request expired before it was approved."
OWN_REQUEST = "You requested this change, so you cannot approve or reject it."
ALREADY_VOTED = "You have already voted on this request."
NOT_ALLOWED_TO_APPROVE = "Your role does not allow approving this kind of change."
NOT_ALLOWED_TO_REQUEST = "Your role does not allow requesting this kind of change."
ONLY_REQUESTER = "Only the person who requested this change can do that."
NOT_APPROVED = "This change is not approved (it is {state})."
DEADLINE_PASSED = "The time to carry out this approved change has passed; request it again."
NOT_EXECUTED_BY_REQUESTER = "This change is carried out by the approval itself."
PAYLOAD_TAMPERED = "The stored change does not match what was approved; nothing was sent."
KIND_UNAVAILABLE = "This kind of change cannot be carried out here (no app handles it)."
NOT_UNKNOWN = "Only a change whose outcome is unknown can be reconciled."

STEP_UP_NEEDED = "Enter the code from your authenticator app to approve."
STEP_UP_WRONG = "That code was not accepted. Codes work once; wait for the next one."
STEP_UP_NO_DEVICE = (
    "Approving needs your second factor, and you have no authenticator app set up. "
    "Set one up first (Two-factor sign-in)."
)
STEP_UP_THROTTLED = "Too many wrong codes: wait a little before trying again."

POLICY_SETTLEMENT_MINIMUM = "A settlement leg always needs at least one approver."
POLICY_POLICY_MINIMUM = "A change of the approval policy always needs another Admin's approval."
POLICY_UNCHANGED = "That is the policy already in force; nothing to request."
POLICY_CHANGED_SINCE = "the policy for this kind changed since the request"

# Reviewing afterwards (changes that ran at once).
REVIEWED = "Marked reviewed."
ALREADY_REVIEWED = "Someone already reviewed this change."
NOT_REVIEWABLE = "Only a change that ran at once, without approval, is reviewed afterwards."
OWN_REVIEW = "You made this change, so someone else reviews it."
