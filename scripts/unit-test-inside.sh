#!/bin/sh
# The part of scripts/unit-test that runs inside the booted container, as
# root: installs the packages, a SoftHSMv2 token and hsmd's configuration,
# then checks the units. Prints "ok: ..." per check; exits non-zero on the
# first failure.
set -eu
fail() { echo "scripts/unit-test: FAIL: $*" >&2; journalctl -u hsmd.service -u kms-frontend.service --no-pager -n 30 >&2 || true; exit 1; }
ok() { echo "  ok: $*"; }
# until_ok SECONDS CMD...: runs CMD every 0.1 s until it succeeds; false after
# about SECONDS (counted in tries: this is /bin/sh, which has no $SECONDS).
until_ok() { tries=$(($1 * 10)); shift; until "$@"; do tries=$((tries - 1)); [ "$tries" -gt 0 ] || return 1; sleep 0.1; done; }
cd /root/unit-test

dpkg -i ./hsmd_*.deb ./kms-frontend_*.deb >/dev/null 2>&1 || fail "dpkg -i"
ok "dpkg -i with systemd running"

# A SoftHSMv2 token stands in for the SmartCard-HSM.
slot=$(softhsm2-util --init-token --free --label unit-test --so-pin 3537363231383830 \
  --pin 648219 | sed -n 's/.*reassigned to slot \([0-9]*\).*/\1/p')
[ -n "$slot" ] || fail "softhsm2-util --init-token"
chgrp -R softhsm /var/lib/softhsm/tokens
chmod -R g+rwX /var/lib/softhsm/tokens
cat >/etc/hsmd/hsmd.toml <<CONF
hsm_model = "softhsm2"
hsm_admin = ["root", "admin"]
hsm_slot = [$slot]
clients = ["@hsmd-clients"]
frontends = ["kms"]
CONF
install -m 0600 /dev/null /etc/hsmd/hsm_password
echo 648219 >/etc/hsmd/hsm_password
# SoftHSMv2 writes its token directory; a short watchdog to see it pinged.
mkdir -p /etc/systemd/system/hsmd.service.d
cat >/etc/systemd/system/hsmd.service.d/unit-test.conf <<CONF
[Service]
ReadWritePaths=/var/lib/softhsm/tokens
SupplementaryGroups=softhsm
WatchdogSec=4s
CONF
systemctl daemon-reload
systemctl start hsmd.socket

hsmctl status | grep -q "logged_in=true" || fail "hsmctl status (socket activation)"
[ "$(systemctl is-active hsmd.service)" = active ] || fail "hsmd.service is not active"
systemctl show -p StatusText --value hsmd.service | grep -q . || fail "no STATUS= from hsmd"
ok "socket activation, READY=1, status: $(systemctl show -p StatusText --value hsmd.service)"
journalctl -u hsmd.service --no-pager | grep -q "PINs from the systemd credential" || fail "PINs not from the credential"
ok "PINs from the credential"

pid=$(systemctl show -p MainPID --value hsmd.service)
st=/proc/$pid/status
uid=$(id -u hsmd)
grep -q "^Uid:[[:space:]]*${uid}[[:space:]]" "$st" || fail "hsmd runs as $(grep ^Uid: "$st")"
grep -q "^CapEff:[[:space:]]*0*$" "$st" || fail "$(grep ^CapEff: "$st")"
grep -q "^CapBnd:[[:space:]]*0*$" "$st" || fail "$(grep ^CapBnd: "$st")"
grep -q "^NoNewPrivs:[[:space:]]*1" "$st" || fail "no NoNewPrivs"
grep -q "^Seccomp:[[:space:]]*2" "$st" || fail "no seccomp filter"
ok "runs as hsmd, no capabilities, no_new_privs, seccomp"

if setpriv --reuid=nobody --regid=nogroup --clear-groups hsmctl status >/dev/null 2>&1; then
  fail "a stranger could use hsmd"
fi
setpriv --reuid=kms --regid=kms --init-groups hsmctl slots >/dev/null || fail "kms (hsmd-clients) refused"
ok "stranger refused, hsmd-clients member admitted"

# Audit records reach the journal as structured fields.
journalctl -u hsmd.service -o verbose --no-pager |
  grep -q '^ *ACTING_USER=root$' || fail "no ACTING_USER= field in the journal"
for f in 'OP=status' 'RESULT=ok' 'PEER_UID=' 'PEER_PID=' 'KEY_UID=-'; do
  journalctl -u hsmd.service -o verbose --no-pager | grep -q "^ *$f" || fail "no $f field in the journal"
done
ok "journal fields ACTING_USER OP RESULT PEER_UID PEER_PID KEY_UID"

systemctl start kms-frontend.service
frontend_reached() { journalctl -u kms-frontend.service --no-pager | grep -q '"identity":"kms"'; }
until_ok 30 frontend_reached ||
  fail "kms-frontend did not reach hsmd as kms (PrivateUsers=, SupplementaryGroups=)"
ok "kms-frontend reaches hsmd as kms"

# The KMS itself, under its hardened unit: KMIP Create and Locate over HTTP as
# the packaged config's default user (admin), the grant kept in its
# StateDirectory.
kmip() { curl -sS --fail-with-body -H 'content-type: application/json' --data "$1" http://127.0.0.1:9998/kmip/2_1; }
kmip '{"tag":"Create","value":[{"tag":"ObjectType","type":"Enumeration","value":"SymmetricKey"},{"tag":"Attributes","value":[{"tag":"CryptographicAlgorithm","type":"Enumeration","value":"AES"},{"tag":"CryptographicLength","type":"Integer","value":256},{"tag":"UniqueIdentifier","type":"TextString","value":"hsm::'"$slot"'::unit"}]}]}' |
  grep -q "hsm::$slot::unit" || fail "KMIP Create through kms-frontend.service"
kmip '{"tag":"Locate","value":[{"tag":"Attributes","value":[]}]}' | grep -q "hsm::$slot::unit" ||
  fail "KMIP Locate through kms-frontend.service"
curl -sS --fail-with-body -H 'content-type: application/json' \
  --data '{"unique_identifier":"hsm::'"$slot"'::unit","user_id":"bob","operation_types":["encrypt"]}' \
  http://127.0.0.1:9998/access/grant >/dev/null || fail "grant through kms-frontend.service"
[ -s /var/lib/kms-frontend/kms.db ] || fail "no access-rights database in /var/lib/kms-frontend"
curl -sS --fail-with-body http://127.0.0.1:9998/health | grep -q '"state":"ready"' || fail "GET /health"
ok "kms-frontend serves KMIP (Create, Locate), grants and /health"

systemctl restart hsmd.service
[ -S /run/hsmd/hsmd.sock ] || fail "the socket went away on restart"
hsmctl status >/dev/null || fail "hsmctl after restart"
ok "restart keeps the socket"

sleep 10
[ "$(systemctl show -p NRestarts --value hsmd.service)" = 0 ] || fail "hsmd was restarted (watchdog?)"
[ "$(systemctl is-active hsmd.service)" = active ] || fail "hsmd.service died"
ok "watchdog pinged for 10 s (WatchdogSec=4s)"

exposure=$(systemd-analyze security hsmd.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure"
ok "exposure of the running hsmd.service: $exposure"

# A wrong PIN: hsmd exits 3, and hsmd.service's ExecStopPost stops
# hsmd.socket, so no later connection starts it again (each start would spend
# one of the token's PIN tries).
systemctl stop hsmd.service
echo 000000 >/etc/hsmd/hsm_password
systemctl reset-failed hsmd.service hsmd.socket
since=$(date '+%Y-%m-%d %H:%M:%S')
hsmctl status >/dev/null 2>&1 && fail "hsmd served with a wrong PIN"
# hsmd exits 3, then ExecStopPost stops hsmd.socket.
socket_stopped() { [ "$(systemctl is-active hsmd.socket)" != active ]; }
until_ok 30 socket_stopped || fail "hsmd.socket still listens after a refused PIN"
hsmctl status >/dev/null 2>&1 && fail "hsmd served with a wrong PIN (second client)"
starts=$(journalctl -u hsmd.service --since "$since" --no-pager | grep -c "Starting hsmd" || true)
[ "$starts" -eq 1 ] || fail "hsmd was started $starts times with a wrong PIN"
[ "$(systemctl show -p ExecMainStatus --value hsmd.service)" = 3 ] || fail "a refused PIN did not exit 3"
[ "$(systemctl is-active hsmd.socket)" != active ] || fail "hsmd.socket still listens after a refused PIN"
ok "wrong PIN: 1 start (exit 3), then hsmd.socket stopped"
echo 648219 >/etc/hsmd/hsm_password
systemctl reset-failed 'hsmd.*'
systemctl start hsmd.socket
hsmctl status >/dev/null || fail "no recovery with reset-failed (docs/install.md)"
ok "recovery: reset-failed, start hsmd.socket"

dpkg -r kms-frontend hsmd >/dev/null 2>&1 || fail "dpkg -r"
[ "$(systemctl is-active hsmd.socket)" != active ] || fail "hsmd.socket still listening after dpkg -r"
ok "dpkg -r stops the units"
echo "scripts/unit-test: all unit checks passed"
