#!/usr/bin/env python3
"""A scriptable SIP phone on PJSIP's pjsua2: one process is one user agent.

A SIP stack none of us wrote, so what a PBX sees is what a real phone sends (REFER with
Replaces, re-INVITE holds, 302 deflections), not what our own tests/support/sip.rs thinks a
phone sends.

Driven by one command per line on stdin; prints one JSON object per line on stdout for every
event and for every command's outcome ({"event": "ok"|"error", "cmd": ...}). Every object has
"event" and "ts" (Unix time, seconds, to line it up with PBX captures). Calls are named by
pjsua's call id (a small integer, reused after a call ends).

    python phone.py --bind 127.0.0.1:5170 --id sip:alice@127.0.0.1           (static contact)
    python phone.py --bind 127.0.0.1:5270 --id sip:alice@127.0.0.1 \\
        --registrar sip:127.0.0.1:5260 --user alice --password alice       (registers)

Commands:
    call <uri>                  place a call; answers {"event":"calling","call":N}
    answer <id> [code]          answer an incoming call (200, or 180/183/486...)
    hangup <id>                 hang up (CANCEL, decline or BYE as the state requires)
    hold <id> / unhold <id>     re-INVITE sendonly / sendrecv
    xfer <id> <uri>             blind transfer: REFER Refer-To <uri>
    xfer_replaces <id> <dest>   attended transfer: REFER to <dest>'s peer, with Replaces
    redirect <id> <uri>         answer an incoming INVITE with 302 and Contact <uri> (deflect)
    auto ring|answer|redirect <uri>   what to do with incoming calls from now on (default ring)
    dtmf <id> <digits>          RFC 2833 digits
    rtp <id>                    RTP packets received/sent on the call's audio stream
    calls                       every call and its state
    quit                        hang up everything and exit
"""

import argparse
import json
import os
import re
import select
import sys
import time

import pjsua2 as pj

# Headers of an incoming INVITE (or in-dialog request) that say who and why: printed as they
# came, lower-cased names.
INTERESTING = (
    "from", "to", "contact", "call-id", "p-asserted-identity", "remote-party-id",
    "diversion", "history-info", "referred-by", "replaces", "alert-info", "call-info",
    "user-agent", "subject", "refer-to", "event", "x-callpark-trunk",
)

# pjsua call ids -> Call objects: Python must hold them, or SWIG frees them under pjsua.
CALLS = {}
AUTO = ["ring", None]  # mode, redirect uri


# The JSON stream: a copy of the stdout we were given. File descriptor 1 itself is pointed at
# stderr in main(), so nothing pjlib prints (it logs to the console before libInit can be told
# otherwise) can get into the stream.
OUT = None


def emit(event, **fields):
    fields = {"event": event, "ts": round(time.time(), 3), **fields}
    OUT.write(json.dumps(fields) + "\n")
    OUT.flush()


def describe(e):
    """pjsua2's Error says nothing useful through repr()."""
    if isinstance(e, pj.Error):
        return "%s: %s (status %d)" % (e.title, e.reason, e.status)
    return repr(e)


def caller_id(uri):
    """("Name", "user") of a name-addr like '"Carol" <sip:5551234@host>'."""
    m = re.match(r'\s*(?:"([^"]*)"|([^<]*?))\s*<?sips?:([^@;>]*)', uri)
    return {"name": (m.group(1) or m.group(2) or "").strip(), "number": m.group(3)} if m else {}


def headers_of(whole_msg):
    """The INTERESTING headers of a raw SIP message, {name: [values]}."""
    out = {}
    head = whole_msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    for line in head:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip().lower()
        name = {"f": "from", "t": "to", "m": "contact", "i": "call-id", "r": "refer-to",
                "b": "referred-by"}.get(name, name)
        if name in INTERESTING or name.startswith("x-"):
            out.setdefault(name, []).append(value.strip())
    return out


def media_status(status):
    return {
        pj.PJSUA_CALL_MEDIA_NONE: "none",
        pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
        pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
        pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
        pj.PJSUA_CALL_MEDIA_ERROR: "error",
    }.get(status, str(status))


def guarded(fn):
    """pjsua2's callbacks run inside C: an exception there would be lost (or abort)."""
    def wrapper(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as e:  # noqa: BLE001 - reported, never raised into pjsua
            emit("error", where=fn.__name__, error=describe(e))
    return wrapper


class Call(pj.Call):
    def __init__(self, acc, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.acc = acc

    @guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        emit("call_state", call=ci.id, state=ci.stateText, code=ci.lastStatusCode,
             reason=ci.lastReason, remote=ci.remoteUri, local=ci.localUri,
             call_id=ci.callIdString, role="caller" if ci.role == pj.PJSIP_ROLE_UAC else "callee")
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Dropped on the next loop turn: the object must outlive this callback.
            PENDING_DROP.append(ci.id)

    @guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, m in enumerate(ci.media):
            if m.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            emit("media_state", call=ci.id, index=i, status=media_status(m.status),
                 dir=m.dir)
            if m.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                # Null device both ways: silence goes out (VAD is off, so RTP flows) and
                # what comes in is consumed, which is all the stream statistics need.
                am = self.getAudioMedia(i)
                adm = ENDPOINT.audDevManager()
                adm.getCaptureDevMedia().startTransmit(am)
                am.startTransmit(adm.getPlaybackDevMedia())

    @guarded
    def onCallTransferStatus(self, prm):
        # NOTIFYs of our REFER (sipfrag status of the new call).
        emit("xfer_status", call=self.getId(), code=prm.statusCode, reason=prm.reason,
             final=prm.finalNotify)
        # A transfer that succeeded ends the transferring call, as desk phones do (Asterisk
        # leaves it to the phone: it never sends BYE on it).
        if prm.finalNotify and 200 <= prm.statusCode < 300:
            prm.cont = False
            self.hangup(pj.CallOpParam(True))

    @guarded
    def onCallTransferRequest(self, prm):
        # A REFER sent to us: accepted (prm.statusCode stays 202), reported.
        emit("xfer_request", call=self.getId(), to=prm.dstUri, code=prm.statusCode)

    @guarded
    def onCallReplaceRequest(self, prm):
        emit("replace_request", call=self.getId(), code=prm.statusCode)

    @guarded
    def onCallReplaced(self, prm):
        new = Call(self.acc, prm.newCallId)
        CALLS[prm.newCallId] = new
        emit("replaced", call=self.getId(), by=prm.newCallId)

    @guarded
    def onCallRedirected(self, prm):
        emit("redirected", call=self.getId(), target=prm.targetUri)
        return pj.PJSIP_REDIRECT_ACCEPT

    @guarded
    def onCallTsxState(self, prm):
        # Requests the PBX sends within the call (re-INVITE, UPDATE, BYE, NOTIFY, INFO):
        # their method and identity headers (who the phone now talks to).
        e = prm.e
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        ts = e.body.tsxState
        if ts.type != pj.PJSIP_EVENT_RX_MSG or ts.tsx.role != pj.PJSIP_ROLE_UAS:
            return
        if ts.tsx.state != pj.PJSIP_TSX_STATE_TRYING:
            return
        msg = ts.src.rdata.wholeMsg
        emit("rx_request", call=self.getId(), method=ts.tsx.method,
             headers=headers_of(msg))

    @guarded
    def onDtmfDigit(self, prm):
        emit("dtmf", call=self.getId(), digit=prm.digit)

    @guarded
    def onInstantMessage(self, prm):
        emit("message", call=self.getId(), frm=prm.fromUri, to=prm.toUri,
             content_type=prm.contentType, body=prm.msgBody)


PENDING_DROP = []


class LogFile(pj.LogWriter):
    """pjsua's log, one flush per entry: pjlib's own log file is stdio-buffered and loses its
    tail when the phone is killed, which is when its log is wanted most."""

    def __init__(self, path):
        super().__init__()
        self.f = open(path, "a")

    def write(self, entry):
        self.f.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        self.f.flush()


class Account(pj.Account):
    @guarded
    def onRegState(self, prm):
        emit("reg_state", code=prm.code, reason=prm.reason, expiration=prm.expiration,
             active=self.getInfo().regIsActive)

    @guarded
    def onIncomingCall(self, prm):
        call = Call(self, prm.callId)
        CALLS[prm.callId] = call
        ci = call.getInfo()
        emit("incoming", call=prm.callId, remote=ci.remoteUri, local=ci.localUri,
             caller_id=caller_id(ci.remoteUri), contact=ci.remoteContact, call_id=ci.callIdString,
             headers=headers_of(prm.rdata.wholeMsg))
        mode, uri = AUTO
        if mode == "answer":
            answer(call, 200)
        elif mode == "redirect":
            redirect(call, uri)
        else:
            answer(call, 180)

    @guarded
    def onInstantMessage(self, prm):
        emit("message", frm=prm.fromUri, to=prm.toUri, content_type=prm.contentType,
             body=prm.msgBody, headers=headers_of(prm.rdata.wholeMsg))


def answer(call, code):
    p = pj.CallOpParam()
    p.statusCode = code
    call.answer(p)


def redirect(call, uri):
    """A deflection: 302 whose Contact is the target. pjsip adds the dialog's own Contact
    to a 3xx only when the response has none, so this one is the only Contact sent."""
    p = pj.CallOpParam()
    p.statusCode = 302
    h = pj.SipHeader()
    h.hName = "Contact"
    h.hValue = uri if uri.startswith("<") else "<%s>" % uri
    p.txOption.headers.append(h)
    call.answer(p)


def media_index(call):
    ci = call.getInfo()  # held: the media vector dies with a temporary CallInfo
    for i, m in enumerate(ci.media):
        if m.type == pj.PJMEDIA_TYPE_AUDIO:
            return i
    raise RuntimeError("no audio stream")


def command(acc, line):
    words = line.split()
    if not words:
        return
    cmd, args = words[0], words[1:]

    def call_of(i=0):
        cid = int(args[i])
        if cid not in CALLS:
            raise KeyError("no call %d" % cid)
        return CALLS[cid]

    if cmd == "call":
        c = Call(acc)
        p = pj.CallOpParam(True)
        c.makeCall(args[0], p)
        CALLS[c.getId()] = c
        emit("calling", call=c.getId(), uri=args[0])
        return
    if cmd == "answer":
        answer(call_of(), int(args[1]) if len(args) > 1 else 200)
    elif cmd == "hangup":
        call_of().hangup(pj.CallOpParam())
    elif cmd == "hold":
        call_of().setHold(pj.CallOpParam())
    elif cmd == "unhold":
        p = pj.CallOpParam(True)  # the call's media settings, or the re-INVITE drops audio
        p.opt.flag = pj.PJSUA_CALL_UNHOLD
        call_of().reinvite(p)
    elif cmd == "xfer":
        call_of().xfer(args[1], pj.CallOpParam())
    elif cmd == "xfer_replaces":
        call_of().xferReplaces(call_of(1), pj.CallOpParam())
    elif cmd == "redirect":
        redirect(call_of(), args[1])
    elif cmd == "auto":
        if args[0] not in ("ring", "answer", "redirect") or (args[0] == "redirect") != (len(args) == 2):
            raise ValueError("auto ring|answer|redirect <uri>")
        AUTO[:] = [args[0], args[1] if len(args) > 1 else None]
    elif cmd == "dtmf":
        call_of().dialDtmf(args[1])
    elif cmd == "rtp":
        c = call_of()
        st = c.getStreamStat(media_index(c)).rtcp
        emit("rtp", call=int(args[0]), rx=st.rxStat.pkt, tx=st.txStat.pkt,
             rx_lost=st.rxStat.loss)
        return
    elif cmd == "calls":
        for cid, c in sorted(CALLS.items()):
            ci = c.getInfo()
            emit("call", call=cid, state=ci.stateText, remote=ci.remoteUri,
                 call_id=ci.callIdString)
        return
    elif cmd == "quit":
        raise SystemExit
    else:
        raise ValueError("unknown command %r" % cmd)
    emit("ok", cmd=cmd, args=args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bind", required=True, help="UDP address of the phone, host:port")
    ap.add_argument("--id", required=True, help="the phone's address of record, sip:user@domain")
    ap.add_argument("--registrar", help="REGISTER there (sip:host:port); none: static contact")
    ap.add_argument("--user", help="digest user name")
    ap.add_argument("--password", help="digest password")
    ap.add_argument("--log", help="pjsua's log file (SIP messages at level >= 4)")
    ap.add_argument("--log-level", type=int, default=5)
    ap.add_argument("--rtp-port", type=int, default=0, help="first RTP port (0: any)")
    opts = ap.parse_args()
    host, port = opts.bind.rsplit(":", 1)
    global OUT
    OUT = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    global ENDPOINT
    ep = ENDPOINT = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # No pjsua threads: every callback runs inside libHandleEvents on this thread, between
    # commands, so Python never sees a foreign thread (and media is polled here too).
    # mainThreadOnly: what other pjlib threads (the null device's clock) log or call back is
    # queued for this thread too.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    # A benchmark's phone holds a consultation, a held call and a ringback at once, over and over.
    cfg.uaConfig.maxCalls = 32
    cfg.uaConfig.userAgent = "callpark-phone pjsua2 " + ep.libVersion().full
    cfg.medConfig.threadCnt = 0
    cfg.medConfig.noVad = True  # silence is sent as RTP: packet counts mean something
    cfg.medConfig.ecTailLen = 0
    # stdout carries JSON only: pjsua's log goes to the file, never the console. pjsua hands
    # the writer what passes consoleLevel (the writer stands in for the console).
    cfg.logConfig.level = cfg.logConfig.consoleLevel = opts.log_level if opts.log else 0
    cfg.logConfig.msgLogging = bool(opts.log)
    if opts.log:
        global LOG_WRITER  # pjsua2 holds a bare pointer: Python must keep the object
        LOG_WRITER = LogFile(opts.log)
        cfg.logConfig.writer = LOG_WRITER
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    # PCMU only: both testbeds take it, and the SDP stays short to read in captures.
    for c in ep.codecEnum2():
        ep.codecSetPriority(c.codecId, 255 if c.codecId.startswith("PCMU/") else 0)

    tc = pj.TransportConfig()
    tc.port = int(port)
    tc.boundAddress = host
    tc.publicAddress = host
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()

    ac = pj.AccountConfig()
    ac.idUri = opts.id
    ac.mediaConfig.transportConfig.port = opts.rtp_port
    ac.mediaConfig.transportConfig.boundAddress = host
    if opts.registrar:
        ac.regConfig.registrarUri = opts.registrar
    if opts.user:
        ac.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", opts.user, 0, opts.password or ""))
    # The contact is what we are bound to, never a guess from the PBX's Via rewriting.
    ac.natConfig.contactRewriteUse = 0
    ac.natConfig.viaRewriteUse = 0
    ac.natConfig.sdpNatRewriteUse = 0
    acc = Account()
    acc.create(ac, True)
    emit("ready", bind=opts.bind, id=opts.id, registrar=opts.registrar)

    buf = b""
    fd = sys.stdin.fileno()
    try:
        while True:
            ep.libHandleEvents(10)
            while PENDING_DROP:
                CALLS.pop(PENDING_DROP.pop(), None)
            r, _, _ = select.select([fd], [], [], 0.01)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # stdin closed: the driver is gone
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    command(acc, line.decode().strip())
                except SystemExit:
                    raise
                except Exception as e:  # noqa: BLE001 - reported to the driver
                    emit("error", cmd=line.decode().strip(), error=describe(e))
    except SystemExit:
        pass
    ep.hangupAllCalls()
    for _ in range(20):  # let the BYEs go out
        ep.libHandleEvents(10)
    emit("quit")
    # pjsua's destructors and Python's collector disagree at exit; nothing is left to flush.
    os._exit(0)


if __name__ == "__main__":
    main()
