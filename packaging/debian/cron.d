# carbyne from cron, instead of the carbyne-agent service (use one or the
# other): `systemctl disable --now carbyne-agent`, then uncomment the line
# below. Each run collects once, delivers and exits; the counters kept in
# /var/lib/carbyne give real rates from one run to the next.
#
# * * * * * carbyne carbyne agent --once
