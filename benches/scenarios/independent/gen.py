#!/usr/bin/env python3
"""An independent simulated shop for kpiwatch, written without the project's simulator.

A European fashion-and-home shop run from Paris (Europe/Paris), three weeks from
Monday 2025-10-13 00:00 local, across the autumn clock change (Sunday 2025-10-26,
03:00 CEST -> 02:00 CET, a 25-hour day).  Eight countries of very different size,
each on its own local clock (GB and PT an hour behind Paris, ES dining late),
three platforms whose mix moves to mobile in the evening and at the weekend,
six payment nodes (one older and smaller), slow growth of 1.5 %/week.

Counts are overdispersed: every rate is multiplied by gamma factors (a global
and a per-country one per 5-minute block, its own factor per event kind, an
hourly AR(1) wander of the log level, and day-level factors), then drawn as
Poisson, so the counts are gamma-Poisson (negative binomial) mixtures.
Basket amounts are log-normal with a median depending on platform, country
and hour, plus 0.4 % B2B orders 10-60x larger.

Weeks 1-2 are clean.  Week 3 has eight labelled incidents.

Usage:
  gen.py --seed 1 --scale 1 --events OUT.jsonl --labels OUT.json
"""

import argparse
import bisect
import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
SHOP_TZ = ZoneInfo("Europe/Paris")
START_LOCAL = datetime(2025, 10, 13, 0, 0, tzinfo=SHOP_TZ)  # a Monday
DAYS = 21

PEAK_SESSIONS_PER_MIN = 110.0  # whole shop, weekday evening peak, scale 1

# code, share of traffic, time zone, evening-peak shift in hours, basket factor
COUNTRIES = [
    ("FR", 0.38, "Europe/Paris", 0.0, 1.00),
    ("DE", 0.24, "Europe/Berlin", -0.5, 1.05),
    ("ES", 0.13, "Europe/Madrid", 1.25, 0.90),
    ("IT", 0.10, "Europe/Rome", 0.5, 0.95),
    ("GB", 0.07, "Europe/London", 0.0, 1.15),
    ("BE", 0.04, "Europe/Brussels", 0.0, 1.00),
    ("PT", 0.03, "Europe/Lisbon", 0.5, 0.85),
    ("LU", 0.01, "Europe/Luxembourg", 0.0, 1.45),
]
PLATFORMS = ["web", "ios", "android"]
CONVERSION = {"web": 0.042, "ios": 0.040, "android": 0.029}
BASKET_MEDIAN = {"web": 47.0, "ios": 38.0, "android": 31.0}
BASKET_SIGMA = 0.85
NODES = ["node-1", "node-2", "node-3", "node-4", "node-5", "node-6"]
NODE_WEIGHTS = [1.0, 1.0, 1.0, 1.0, 1.0, 0.7]
NODE_FAIL = [0.030, 0.032, 0.030, 0.034, 0.030, 0.045]
LOGINS_PER_SESSION = 0.30
SIGNUPS_PER_SESSION = 0.018
WEEKDAY_FACTOR = [1.00, 0.97, 0.98, 1.00, 0.92, 0.78, 0.86]  # Mon..Sun, local
GROWTH_PER_WEEK = 0.015

# gamma shapes (mean 1, CV = 1/sqrt(shape))
SHAPE_GLOBAL_BLOCK = 200.0
SHAPE_COUNTRY_BLOCK = 60.0
SHAPE_CHECKOUT_BLOCK = 60.0
SHAPE_LOGIN_BLOCK = 120.0
SHAPE_SIGNUP_BLOCK = 15.0
SHAPE_FAIL_BLOCK = 8.0
AR_PHI, AR_SD = 0.8, 0.025  # hourly log-level wander
DAY_SD, COUNTRY_DAY_SD = 0.04, 0.05


def g(h, mu, sd):
    d = abs(h - mu)
    d = min(d, 24.0 - d)  # circular in the day
    return math.exp(-0.5 * (d / sd) ** 2)


def daily_curve(h, weekend, evening_shift):
    if not weekend:
        return (0.06 + 0.35 * g(h, 9.5, 1.4) + 0.55 * g(h, 12.75, 0.8)
                + 0.45 * g(h, 15.5, 2.3) + 0.95 * g(h, 20.75 + evening_shift, 1.5))
    return (0.07 + 0.60 * g(h, 11.5 + 0.5 * evening_shift, 2.0) + 0.35 * g(h, 15.0, 2.0)
            + 0.85 * g(h, 21.0 + evening_shift, 1.7))


def platform_mix(h, weekend):
    m = 0.15 * g(h, 21.0, 2.5) + (0.10 if weekend else 0.0)
    w = {"web": 0.55 - m, "ios": 0.27 + 0.6 * m, "android": 0.18 + 0.4 * m}
    return w


def rfc3339(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(y, mo, d, h, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=SHOP_TZ)


# ---------------------------------------------------------------- incidents
# All in week 3 (Mon 2025-10-27 .. Sun 2025-11-02), local Paris times.
INCIDENTS = [
    dict(id="checkout-outage", kind="total_outage", start=local(2025, 10, 27, 14, 0), minutes=45,
         kpis=["checkouts", "checkouts_by_*", "conversion", "revenue_by_node", "basket_value",
               "payment_failures"],
         labels={}, direction="drop",
         note="checkout service down: no checkouts and no payment attempts at all"),
    dict(id="ios-checkouts-drop", kind="segment_drop", start=local(2025, 10, 28, 10, 0), minutes=180,
         kpis=["checkouts", "checkouts_by_*", "conversion", "revenue_by_node", "payment_failures"],
         labels={"platform": "ios"}, direction="drop",
         note="iOS release breaks Apple Pay sheet: 70 % of iOS checkouts (and their payment attempts) lost"),
    dict(id="node3-short-amounts", kind="node_amount", start=local(2025, 10, 29, 9, 0), minutes=240,
         kpis=["revenue_by_node", "basket_value"],
         labels={"node": "node-3"}, direction="drop",
         note="canary on node-3 books every amount at 0.4x (60 % fewer euros than peers)"),
    dict(id="it-signup-bots", kind="bot_wave", start=local(2025, 10, 30, 2, 0), minutes=90,
         kpis=["signups_by_country"],
         labels={"country": "IT"}, direction="spike",
         note="signup bots from Italy at night"),
    dict(id="logins-drop", kind="partial_drop", start=local(2025, 10, 30, 18, 0), minutes=120,
         kpis=["logins"],
         labels={}, direction="drop",
         note="identity provider degraded: 40 % of logins fail silently"),
    dict(id="payment-failure-spike", kind="failure_spike", start=local(2025, 10, 31, 16, 0), minutes=60,
         kpis=["payment_failures"],
         labels={}, direction="spike",
         note="acquirer timeouts: first payment attempts fail 10x as often (customers retry, checkouts unchanged)"),
    dict(id="price-bug-x0.1", kind="price_bug", start=local(2025, 11, 1, 11, 0), minutes=120,
         kpis=["basket_value", "revenue_by_node"],
         labels={}, direction="drop",
         note="price feed in cents read as euros/10: every basket at 0.1x"),
    dict(id="pt-checkouts-stop", kind="country_outage", start=local(2025, 11, 2, 10, 0), minutes=360,
         kpis=["checkouts_by_country", "checkouts", "conversion", "revenue_by_node"],
         labels={"country": "PT"}, direction="drop",
         note="Portuguese payment method (MB Way) broken: no checkouts from PT"),
]
for inc in INCIDENTS:
    inc["s"] = int(inc["start"].timestamp())
    inc["e"] = inc["s"] + 60 * inc["minutes"]

QUIET = [
    dict(id="dst-autumn", kind="dst", start=local(2025, 10, 26, 0, 0),
         end=local(2025, 10, 27, 0, 0),
         note="clocks go back 03:00 CEST -> 02:00 CET: a 25-hour Sunday; must not alert"),
    dict(id="day-after-dst", kind="dst", start=local(2025, 10, 27, 0, 0),
         end=local(2025, 10, 27, 12, 0),
         note="first weekday morning on winter time; must not alert"),
]


def active(inc_id, t):
    for inc in INCIDENTS:
        if inc["id"] == inc_id:
            return inc["s"] <= t < inc["e"]
    raise KeyError(inc_id)


# ---------------------------------------------------------------- rate model
class Clock:
    """Local-time facts of one UTC minute for each country (cached per hour)."""

    def __init__(self):
        self.zones = {c[0]: ZoneInfo(c[2]) for c in COUNTRIES}
        self.cache = {}

    def local(self, cc, t):
        key = (cc, t // 900)
        v = self.cache.get(key)
        if v is None:
            lt = datetime.fromtimestamp(t, self.zones[cc])
            v = (lt.hour + lt.minute / 60.0, lt.weekday(), lt.date())
            self.cache[key] = v
        h0, wd, date = v
        return h0 + ((t % 900) / 3600.0), wd, date


CLOCK = Clock()
T0 = int(START_LOCAL.timestamp())


def mean_sessions(cc, t, scale):
    """Noise-free sessions per minute for country cc at UTC second t, by platform."""
    _, share, _, shift, _ = COUNTRY_BY[cc]
    h, wd, _ = CLOCK.local(cc, t)
    weekend = wd >= 5
    growth = math.exp(math.log1p(GROWTH_PER_WEEK) * (t - T0) / (7 * 86400.0))
    base = scale * PEAK_SESSIONS_PER_MIN * share * WEEKDAY_FACTOR[wd] * daily_curve(h, weekend, shift) * growth
    mix = platform_mix(h, weekend)
    return {p: base * mix[p] for p in PLATFORMS}, h, weekend


COUNTRY_BY = {c[0]: c for c in COUNTRIES}


def mean_per_minute(kind, t, scale, country=None, platform=None):
    """Noise-free mean per minute of an event kind (for sizing delay targets)."""
    tot = 0.0
    for c in COUNTRIES:
        if country and c[0] != country:
            continue
        ms, _, _ = mean_sessions(c[0], t, scale)
        for p in PLATFORMS:
            if platform and p != platform:
                continue
            if kind == "session":
                tot += ms[p]
            elif kind == "checkout":
                tot += ms[p] * CONVERSION[p]
            elif kind == "login":
                tot += ms[p] * LOGINS_PER_SESSION
            elif kind == "signup":
                tot += ms[p] * SIGNUPS_PER_SESSION
            elif kind == "payment_failed":
                tot += ms[p] * CONVERSION[p] * 0.033
    return tot


# ---------------------------------------------------------------- sampling helpers
def poisson(rng, mu):
    if mu <= 0:
        return 0
    if mu < 30:
        L = math.exp(-mu)
        k, p = 0, rng.random()
        while p > L:
            k += 1
            p *= rng.random()
        return k
    # normal approximation with continuity correction for large means
    return max(0, int(round(rng.gauss(mu, math.sqrt(mu)))))


DISPERSION = 1.0  # --dispersion: multiplies the gamma factors' variance (0: plain Poisson)
WANDER = 1.0      # --wander: multiplies the hourly and daily level wander's sd (0: none)


def gam(rng, shape):
    x = rng.gammavariate(shape, 1.0 / shape)  # drawn whatever the setting: same stream
    if DISPERSION == 1.0:
        return x
    return 1.0 + (x - 1.0) * math.sqrt(DISPERSION) if DISPERSION > 0 else 1.0


def pick_user(rng, cc, scale):
    pool = int(scale * COUNTRY_BY[cc][1] * 250000) + 50
    return "%s%d" % (cc.lower(), int(pool * rng.random() ** 2.2))


def pick_node(rng):
    x = rng.random() * NODE_CUM[-1]
    return bisect.bisect_right(NODE_CUM, x)


NODE_CUM = []
_acc = 0.0
for _w in NODE_WEIGHTS:
    _acc += _w
    NODE_CUM.append(_acc)


def basket(rng, cc, platform, h):
    med = BASKET_MEDIAN[platform] * COUNTRY_BY[cc][4] * (1.0 + 0.12 * g(h, 21.0, 2.5))
    a = med * math.exp(rng.gauss(0.0, BASKET_SIGMA))
    if rng.random() < 0.004:  # B2B / bulk orders
        a *= math.exp(rng.gauss(math.log(25.0), 0.6))
    return a


# ---------------------------------------------------------------- generation
def generate(seed, scale, out):
    rng = random.Random(seed)
    end_local = START_LOCAL + timedelta(days=DAYS)
    t_end = int(end_local.astimezone(UTC).timestamp())
    ar = 0.0
    day_f, cday_f = {}, {}
    counts = {}
    n_events = 0
    signup_seq = 0
    block = {}
    write = out.write
    for t in range(T0, t_end, 60):
        if (t - T0) % 3600 == 0:
            ar = AR_PHI * ar + rng.gauss(0.0, AR_SD * WANDER)
        if (t - T0) % 300 == 0:
            block = {"g": gam(rng, SHAPE_GLOBAL_BLOCK), "login": gam(rng, SHAPE_LOGIN_BLOCK),
                     "fail": gam(rng, SHAPE_FAIL_BLOCK)}
            for c in COUNTRIES:
                block["c" + c[0]] = gam(rng, SHAPE_COUNTRY_BLOCK)
                block["k" + c[0]] = gam(rng, SHAPE_CHECKOUT_BLOCK)
                block["s" + c[0]] = gam(rng, SHAPE_SIGNUP_BLOCK)
        minute = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:")
        evs = []
        lvl = math.exp(ar) * block["g"]
        outage = active("checkout-outage", t)
        ios_drop = active("ios-checkouts-drop", t)
        node_bug = active("node3-short-amounts", t)
        logins_down = active("logins-drop", t)
        payfail = active("payment-failure-spike", t)
        price_bug = active("price-bug-x0.1", t)
        pt_stop = active("pt-checkouts-stop", t)
        bots = active("it-signup-bots", t)
        for c in COUNTRIES:
            cc = c[0]
            ms, h, weekend = mean_sessions(cc, t, scale)
            _, _, date = CLOCK.local(cc, t)
            if date not in day_f:
                day_f[date] = math.exp(rng.gauss(0.0, DAY_SD * WANDER))
            if (cc, date) not in cday_f:
                cday_f[(cc, date)] = math.exp(rng.gauss(0.0, COUNTRY_DAY_SD * WANDER))
            f = lvl * block["c" + cc] * day_f[date] * cday_f[(cc, date)]
            for p in PLATFORMS:
                mu_s = ms[p] * f
                # sessions
                for _ in range(poisson(rng, mu_s)):
                    evs.append((rng.random() * 60.0, '"type":"session","user":"%s","country":"%s","platform":"%s"'
                                % (pick_user(rng, cc, scale), cc, p)))
                # logins
                mu_l = mu_s * LOGINS_PER_SESSION * block["login"] * (0.6 if logins_down else 1.0)
                for _ in range(poisson(rng, mu_l)):
                    evs.append((rng.random() * 60.0, '"type":"login","user":"%s","country":"%s","platform":"%s"'
                                % (pick_user(rng, cc, scale), cc, p)))
                # signups
                mu_su = mu_s * SIGNUPS_PER_SESSION * block["s" + cc]
                for _ in range(poisson(rng, mu_su)):
                    signup_seq += 1
                    evs.append((rng.random() * 60.0, '"type":"signup","user":"n%d","country":"%s","platform":"%s"'
                                % (signup_seq, cc, p)))
                # checkouts (paid orders) and failed payment attempts
                keep = 1.0
                if outage:
                    keep = 0.0
                if ios_drop and p == "ios":
                    keep *= 0.3
                if pt_stop and cc == "PT":
                    keep = 0.0
                mu_k = mu_s * CONVERSION[p] * block["k" + cc] * keep
                for _ in range(poisson(rng, mu_k)):
                    ni = pick_node(rng)
                    user = pick_user(rng, cc, scale)
                    a = basket(rng, cc, p, h)
                    if node_bug and ni == 2:
                        a *= 0.4
                    if price_bug:
                        a *= 0.1
                    evs.append((rng.random() * 60.0,
                                '"type":"checkout","user":"%s","country":"%s","platform":"%s","node":"%s","amount":%.2f,"currency":"EUR"'
                                % (user, cc, p, NODES[ni], a)))
                    # failed first attempts before this order (retries that then succeeded)
                    pf = NODE_FAIL[ni] * block["fail"] * (10.0 if payfail else 1.0)
                    if rng.random() < min(pf, 0.95):
                        evs.append((rng.random() * 60.0,
                                    '"type":"payment_failed","user":"%s","country":"%s","platform":"%s","node":"%s","amount":%.2f,"reason":"%s"'
                                    % (user, cc, p, NODES[ni], a,
                                       "timeout" if payfail else rng.choice(["declined", "3ds_failed", "timeout"]))))
            if bots and cc == "IT":
                for _ in range(poisson(rng, 2.5 * scale)):
                    signup_seq += 1
                    evs.append((rng.random() * 60.0, '"type":"signup","user":"n%d","country":"IT","platform":"web","ua":"python-requests/2.31"'
                                % signup_seq))
        evs.sort(key=lambda e: e[0])
        for sec, body in evs:
            write('{"time":"%s%06.3fZ",%s}\n' % (minute, min(sec, 59.999), body))
        n_events += len(evs)
    return n_events, T0, t_end


# ---------------------------------------------------------------- labels
def delay_target(inc, scale):
    """Buckets a fair detector needs: ~5 sigma of evidence under overdispersed noise."""
    s = inc["s"]
    k = inc["kind"]
    cv2 = 0.15 ** 2

    def per_bucket(kind, minutes, **kw):
        # mean over the incident's first hour
        span = min(inc["minutes"], 60)
        m = sum(mean_per_minute(kind, s + 60 * i, scale, **kw) for i in range(span)) / span
        return m * minutes

    def count_target(mu, frac):
        if mu <= 0:
            return 99
        if frac >= 1.0:  # stops: zeros over n buckets, e^{-n mu} ~ 1e-7
            return max(2, math.ceil(16.0 / mu))
        return max(2, math.ceil(25.0 * (1.0 / mu + cv2) / frac ** 2))

    def value_target(events_per_bucket, factor):
        shift = abs(math.log(factor)) / BASKET_SIGMA
        return max(2, math.ceil((5.0 / shift) ** 2 / max(events_per_bucket, 1e-9)))

    if k == "total_outage":
        t = count_target(per_bucket("checkout", 5), 1.0)
    elif k == "segment_drop":
        t = count_target(per_bucket("checkout", 5, platform="ios"), 0.7)
    elif k == "node_amount":
        t = value_target(per_bucket("checkout", 15) / 5.7, 0.4)
    elif k == "bot_wave":
        mu = per_bucket("signup", 15, country="IT")
        extra = 2.5 * scale * 15
        t = max(2, math.ceil(25.0 * (mu + cv2 * mu * mu) / (extra * extra)))
    elif k == "partial_drop":
        t = count_target(per_bucket("login", 5), 0.4)
    elif k == "failure_spike":
        mu = per_bucket("payment_failed", 5)
        t = max(2, math.ceil(25.0 * (1.0 / mu + 1.0 / 8.0) / 9.0 ** 2))
    elif k == "price_bug":
        t = value_target(per_bucket("checkout", 15), 0.1)
    elif k == "country_outage":
        t = count_target(per_bucket("checkout", 15, country="PT"), 1.0)
    else:
        t = 6
    width = 15 if k in ("node_amount", "bot_wave", "price_bug", "country_outage") else 5
    return min(t, inc["minutes"] // width), width


def labels(scale):
    incs = []
    for inc in INCIDENTS:
        t, width = delay_target(inc, scale)
        incs.append({
            "id": inc["id"], "kind": inc["kind"],
            "start": rfc3339(inc["start"]),
            "end": rfc3339(inc["start"] + timedelta(minutes=inc["minutes"])),
            "kpis": inc["kpis"], "labels": inc["labels"], "direction": inc["direction"],
            "target_delay_buckets": t,
            "note": "%s (target: %d buckets of %d min)" % (inc["note"], t, width),
        })
    quiet = [{"id": q["id"], "kind": q["kind"], "start": rfc3339(q["start"]), "end": rfc3339(q["end"]),
              "note": q["note"]} for q in QUIET]
    return {"incidents": incs, "quiet": quiet}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--events", required=True, help="output JSONL ('-' for stdout)")
    ap.add_argument("--labels", required=True, help="output labels JSON")
    ap.add_argument("--dispersion", type=float, default=1.0,
                    help="variance multiplier of the per-block gamma factors (0: plain Poisson; diagnostics)")
    ap.add_argument("--wander", type=float, default=1.0,
                    help="multiplier of the hourly AR(1) and daily level wander (0: none; diagnostics)")
    a = ap.parse_args()
    global DISPERSION, WANDER
    DISPERSION, WANDER = a.dispersion, a.wander
    lab = labels(a.scale)
    with open(a.labels, "w") as f:
        json.dump(lab, f, indent=2)
        f.write("\n")
    out = sys.stdout if a.events == "-" else open(a.events, "w", buffering=1 << 20)
    n, t0, t1 = generate(a.seed, a.scale, out)
    if out is not sys.stdout:
        out.close()
    print("wrote %d events %s .. %s (seed %d, scale %g)" % (
        n, rfc3339(datetime.fromtimestamp(t0, UTC)), rfc3339(datetime.fromtimestamp(t1, UTC)), a.seed, a.scale),
        file=sys.stderr)
    for i in lab["incidents"]:
        print("  %-22s %s  target %d buckets" % (i["id"], i["start"], i["target_delay_buckets"]), file=sys.stderr)


if __name__ == "__main__":
    main()
