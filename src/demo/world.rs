//! The simulated population (users, merchants) and each day's events, before they become
//! Arrow batches ([`super::tables`]). Every (purpose, day) pair draws from its own RNG stream
//! derived from the seed, so a day's events do not depend on how many days are generated.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};

use super::DemoSpec;
use crate::partition::{Ds, DAY_MS};

/// Countries with relative weights.
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 40),
    ("IN", 12),
    ("GB", 12),
    ("DE", 10),
    ("BR", 10),
    ("FR", 8),
    ("CA", 5),
    ("MX", 3),
];
/// Purchase categories (also the merchant categories).
pub(crate) const CATEGORIES: &[&str] = &[
    "groceries",
    "electronics",
    "fashion",
    "travel",
    "dining",
    "home",
    "gaming",
];
pub(crate) const PAGES: &[&str] = &[
    "/home",
    "/search",
    "/product",
    "/cart",
    "/checkout",
    "/account",
    "/deals",
    "/help",
];
const CHANNELS: &[&str] = &["web", "ios", "android"];
/// Zipf exponents: how skewed activity is over users and merchants.
const USER_SKEW: f64 = 0.9;
const MERCHANT_SKEW: f64 = 0.8;

/// Independent random streams.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Profiles = 1,
    Checkouts,
    Purchases,
    PageViews,
    Refunds,
    Merchants,
    External,
}

/// The RNG of one stream on one day.
pub(crate) fn rng(seed: u64, stream: Stream, day: i32) -> StdRng {
    let mut x = seed
        ^ (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (day as i64 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(x ^ (x >> 31))
}

/// How many rows get an edge case: `frac` of `n`, but at least one when there are rows.
fn edge_count(n: usize, frac: f64) -> usize {
    if n == 0 {
        0
    } else {
        ((n as f64 * frac).round() as usize).max(1)
    }
}

fn pick_country(r: &mut StdRng) -> &'static str {
    let total: u32 = COUNTRIES.iter().map(|c| c.1).sum();
    let mut x = r.random_range(0..total);
    for &(country, weight) in COUNTRIES {
        if x < weight {
            return country;
        }
        x -= weight;
    }
    COUNTRIES[0].0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) struct User {
    pub id: String,
    pub country: &'static str,
    /// Usually the same as `country`.
    pub phone_country: &'static str,
    pub base_age_days: i64,
    /// Day offset (from the spec's start) from which the user is verified; `None` = never.
    pub verified_from: Option<i32>,
    pub fraud: bool,
}

pub(crate) struct Merchant {
    pub id: String,
    pub category: &'static str,
    /// `None` for merchants without reviews.
    pub base_rating: Option<f64>,
}

#[derive(Clone)]
pub(crate) struct Checkout {
    pub event_id: String,
    pub user: Option<usize>,
    pub merchant: usize,
    pub amount: f64,
    pub ts: i64,
    pub channel: &'static str,
}

#[derive(Clone)]
pub(crate) struct Purchase {
    pub user: usize,
    pub merchant: usize,
    pub amount_cents: Option<i64>,
    pub category: &'static str,
    pub ts: i64,
}

pub(crate) struct Refund {
    pub user: usize,
    pub refund_cents: i64,
    pub ts: i64,
}

pub(crate) struct PageView {
    pub user: usize,
    pub page: Option<&'static str>,
    pub dwell_ms: i64,
    pub ts: i64,
}

/// One day's events, each list sorted by `ts`.
pub(crate) struct DayEvents {
    pub checkouts: Vec<Checkout>,
    pub purchases: Vec<Purchase>,
    pub refunds: Vec<Refund>,
}

pub(crate) struct World {
    pub seed: u64,
    pub start: Ds,
    pub checkouts_per_day: usize,
    pub users: Vec<User>,
    pub merchants: Vec<Merchant>,
    /// Zipf rank (1-based) - 1 → user index; a shuffle, so heavy users are spread over ids.
    user_by_rank: Vec<usize>,
    merchant_by_rank: Vec<usize>,
    user_zipf: Zipf<f64>,
    merchant_zipf: Zipf<f64>,
}

impl World {
    /// The population; `spec` must have at least one user and one merchant.
    pub fn new(spec: &DemoSpec) -> World {
        let mut r = rng(spec.seed, Stream::Profiles, 0);
        let days = (spec.end.0 - spec.start.0 + 1).max(1);
        let mut user_by_rank: Vec<usize> = (0..spec.users).collect();
        user_by_rank.shuffle(&mut r);
        let mut rank_of = vec![0; spec.users];
        for (rank, &u) in user_by_rank.iter().enumerate() {
            rank_of[u] = rank;
        }
        let users = (0..spec.users)
            .map(|i| {
                let country = pick_country(&mut r);
                let phone_country = if r.random_bool(0.1) {
                    pick_country(&mut r)
                } else {
                    country
                };
                let v = r.random::<f64>();
                let verified_from = if v < 0.6 {
                    Some(0)
                } else if v < 0.85 {
                    Some(r.random_range(1..days + 30))
                } else {
                    None
                };
                // The heaviest users are never fraudsters, so refund volumes stay stable.
                let fraud = rank_of[i] >= 20 && r.random_bool(0.03);
                User {
                    id: format!("u{:05}", i + 1),
                    country,
                    phone_country,
                    base_age_days: r.random_range(0..1500),
                    verified_from,
                    fraud,
                }
            })
            .collect();
        let merchants = (0..spec.merchants)
            .map(|i| Merchant {
                id: format!("m{:04}", i + 1),
                category: CATEGORIES[r.random_range(0..CATEGORIES.len())],
                base_rating: if r.random_bool(0.03) {
                    None
                } else {
                    Some(round2(r.random_range(2.5..5.0)))
                },
            })
            .collect();
        let mut merchant_by_rank: Vec<usize> = (0..spec.merchants).collect();
        merchant_by_rank.shuffle(&mut r);
        World {
            seed: spec.seed,
            start: spec.start,
            checkouts_per_day: spec.checkouts_per_day,
            users,
            merchants,
            user_by_rank,
            merchant_by_rank,
            user_zipf: Zipf::new(spec.users as f64, USER_SKEW).expect("at least one user"),
            merchant_zipf: Zipf::new(spec.merchants as f64, MERCHANT_SKEW)
                .expect("at least one merchant"),
        }
    }

    fn pick_user(&self, r: &mut StdRng) -> usize {
        let rank = self.user_zipf.sample(r) as usize;
        self.user_by_rank[rank.clamp(1, self.users.len()) - 1]
    }

    fn pick_merchant(&self, r: &mut StdRng) -> usize {
        let rank = self.merchant_zipf.sample(r) as usize;
        self.merchant_by_rank[rank.clamp(1, self.merchants.len()) - 1]
    }

    /// Days since the spec's start.
    pub fn offset(&self, ds: Ds) -> i32 {
        ds.0 - self.start.0
    }

    /// Checkouts, purchases and refunds of one day.
    pub fn day(&self, ds: Ds) -> DayEvents {
        let checkouts = self.checkouts(ds);
        let purchases = self.purchases(ds, &checkouts);
        let refunds = self.refunds(ds, &checkouts);
        DayEvents {
            checkouts,
            purchases,
            refunds,
        }
    }

    fn checkouts(&self, ds: Ds) -> Vec<Checkout> {
        let mut r = rng(self.seed, Stream::Checkouts, ds.0);
        let start = ds.start_millis();
        let amounts = LogNormal::<f64>::new(3.4, 0.9).expect("valid");
        let n = self.checkouts_per_day;
        let mut out: Vec<Checkout> = (0..n)
            .map(|_| Checkout {
                event_id: String::new(),
                user: Some(self.pick_user(&mut r)),
                merchant: self.pick_merchant(&mut r),
                amount: round2(amounts.sample(&mut r).clamp(0.5, 5000.0)),
                ts: start + r.random_range(0..DAY_MS),
                channel: CHANNELS[r.random_range(0..CHANNELS.len())],
            })
            .collect();
        // Scenario D needs big-ticket checkouts (amount >= 100) every day.
        if n > 0 && !out.iter().any(|c| c.amount >= 100.0) {
            let j = r.random_range(0..n);
            out[j].amount = round2(r.random_range(100.0..400.0));
        }
        if n >= 10 {
            for _ in 0..edge_count(n, 0.005) {
                let j = r.random_range(0..n);
                out[j].user = None;
            }
        }
        out.sort_by_key(|c| c.ts);
        for (i, c) in out.iter_mut().enumerate() {
            c.event_id = format!("ck-{ds}-{i:05}");
        }
        out
    }

    fn purchase(&self, r: &mut StdRng, user: usize, ts: i64) -> Purchase {
        let merchant = self.pick_merchant(r);
        let category = if r.random_bool(0.8) {
            self.merchants[merchant].category
        } else {
            CATEGORIES[r.random_range(0..CATEGORIES.len())]
        };
        let cents = LogNormal::<f64>::new(7.8, 1.0)
            .expect("valid")
            .sample(r)
            .clamp(50.0, 2_000_000.0) as i64;
        let amount_cents = if r.random_bool(0.01) {
            None
        } else {
            Some(cents)
        };
        Purchase {
            user,
            merchant,
            amount_cents,
            category,
            ts,
        }
    }

    /// About 3 purchases per checkout, plus point-in-time edge cases: purchases at exactly
    /// midnight, duplicated (user, ts) rows, and purchases at the same millisecond as a
    /// checkout of the same user.
    fn purchases(&self, ds: Ds, checkouts: &[Checkout]) -> Vec<Purchase> {
        let mut r = rng(self.seed, Stream::Purchases, ds.0);
        let start = ds.start_millis();
        let n = 3 * self.checkouts_per_day;
        let mut out: Vec<Purchase> = (0..n)
            .map(|_| {
                let user = self.pick_user(&mut r);
                let ts = start + r.random_range(0..DAY_MS);
                self.purchase(&mut r, user, ts)
            })
            .collect();
        for _ in 0..edge_count(n, 0.005) {
            let j = r.random_range(0..n);
            out[j].ts = start;
        }
        let with_user: Vec<&Checkout> = checkouts.iter().filter(|c| c.user.is_some()).collect();
        for _ in 0..edge_count(with_user.len(), 0.02) {
            let c = with_user[r.random_range(0..with_user.len())];
            let p = self.purchase(&mut r, c.user.expect("filtered"), c.ts);
            out.push(p);
        }
        for i in 0..edge_count(n, 0.005) {
            let mut dup = out[r.random_range(0..out.len())].clone();
            if i % 2 == 1 {
                // Same user and ts, different values.
                dup.amount_cents = Some(r.random_range(100..50_000));
            }
            out.push(dup);
        }
        out.sort_by_key(|p| p.ts);
        out
    }

    /// Refunds of some of the day's checkouts (fraudulent users refund far more often).
    fn refunds(&self, ds: Ds, checkouts: &[Checkout]) -> Vec<Refund> {
        let mut r = rng(self.seed, Stream::Refunds, ds.0);
        let end = ds.start_millis() + DAY_MS;
        let mut out = Vec::new();
        for c in checkouts {
            let Some(user) = c.user else { continue };
            let p = if self.users[user].fraud { 0.3 } else { 0.04 };
            if r.random_bool(p) {
                let full = (c.amount * 100.0).round() as i64;
                let refund_cents = if r.random_bool(0.7) {
                    full
                } else {
                    (full as f64 * r.random_range(0.2..0.9)) as i64
                };
                out.push(Refund {
                    user,
                    refund_cents,
                    ts: r.random_range(c.ts..end),
                });
            }
        }
        out.sort_by_key(|x| x.ts);
        out
    }

    /// About 4 page views per checkout; a few have no page.
    pub fn page_views(&self, ds: Ds) -> Vec<PageView> {
        let mut r = rng(self.seed, Stream::PageViews, ds.0);
        let start = ds.start_millis();
        let dwell = LogNormal::<f64>::new(9.6, 1.0).expect("valid");
        let n = 4 * self.checkouts_per_day;
        let mut out: Vec<PageView> = (0..n)
            .map(|_| PageView {
                user: self.pick_user(&mut r),
                page: Some(PAGES[r.random_range(0..PAGES.len())]),
                dwell_ms: dwell.sample(&mut r).clamp(100.0, 600_000.0) as i64,
                ts: start + r.random_range(0..DAY_MS),
            })
            .collect();
        for _ in 0..edge_count(n, 0.003) {
            let j = r.random_range(0..n);
            out[j].page = None;
        }
        out.sort_by_key(|p| p.ts);
        out
    }

    /// A merchant's rating on a day: its base rating with a little daily noise.
    pub fn ratings(&self, ds: Ds) -> Vec<Option<f64>> {
        let mut r = rng(self.seed, Stream::Merchants, ds.0);
        self.merchants
            .iter()
            .map(|m| {
                let noise = r.random_range(-0.1..0.1);
                m.base_rating.map(|b| round2((b + noise).clamp(1.0, 5.0)))
            })
            .collect()
    }

    /// Per checkout: the request context and whether the external service answered.
    pub fn external(&self, ds: Ds, checkouts: &[Checkout]) -> Vec<(String, bool)> {
        let mut r = rng(self.seed, Stream::External, ds.0);
        checkouts
            .iter()
            .map(|c| {
                (
                    format!("{{\"channel\":\"{}\"}}", c.channel),
                    !r.random_bool(0.01),
                )
            })
            .collect()
    }
}
