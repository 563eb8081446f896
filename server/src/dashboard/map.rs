//! The map of hazards and patrol routes: an SVG drawn on the server (no
//! script). Points are placed in Web Mercator, the projection of online
//! tile maps, so the same drawing lies over tiles when a tile source is
//! configured (`--map-tiles`, for example 天地图 with its key) and over a
//! plain grid of latitude and longitude lines when none is: the page works
//! with no outside host at all, and with one, the only outside requests are
//! the browser's for tile images from that host (allowed by the page's
//! `img-src` and nothing else).

use std::fmt::Write as _;

use gridsync_core::model::{GeoPoint, HazardStatus, RecordBody, RecordKind};

use super::guard::node_of;
use super::html::{esc, names, out, time};
use super::lists::parsed_views;
use super::{Ctx, Out, Req, WebError};

use crate::store::{ServerStore, ViewQuery};

/// Most hazards one drawing holds (open ones first, then the newest).
const MAX_HAZARDS: u32 = 5_000;
/// Most patrols whose routes one drawing holds (the newest).
const MAX_ROUTES: u32 = 2_000;

/// Drawing size, pixels.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 640.0;
/// Most tile images one page asks for.
const MAX_TILES: usize = 48;
const TILE: f64 = 256.0;

/// A configured tile source: a URL template with `{z}`, `{x}` and `{y}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSource {
    template: String,
    origin: String,
    /// Shown under the map (a provider's required attribution).
    pub attribution: String,
}

impl TileSource {
    /// Check a template: an http(s) URL with `{z}`, `{x}` and `{y}` and
    /// nothing that would break out of an attribute.
    pub fn parse(template: &str, attribution: &str) -> Result<TileSource, String> {
        let rest = template
            .strip_prefix("https://")
            .or_else(|| template.strip_prefix("http://"))
            .ok_or("--map-tiles must start with https:// or http://")?;
        for part in ["{z}", "{x}", "{y}"] {
            if !template.contains(part) {
                return Err(format!("--map-tiles must contain {part}"));
            }
        }
        if template.chars().any(|c| c.is_whitespace() || "\"'<>\\`".contains(c)) {
            return Err("--map-tiles must not contain spaces, quotes or angle brackets".into());
        }
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() || host.contains('{') {
            return Err("--map-tiles needs a fixed host name".into());
        }
        let scheme = if template.starts_with("https://") { "https" } else { "http" };
        Ok(TileSource {
            template: template.to_owned(),
            origin: format!("{scheme}://{host}"),
            attribution: attribution.to_owned(),
        })
    }

    /// `scheme://host[:port]`, for the page's `img-src`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn url(&self, z: u32, x: u32, y: u32) -> String {
        self.template.replace("{z}", &z.to_string()).replace("{x}", &x.to_string()).replace("{y}", &y.to_string())
    }
}

/// Web Mercator world pixel of a point at zoom `z`.
fn world(p: GeoPoint, z: u32) -> (f64, f64) {
    let scale = TILE * f64::from(1u32 << z);
    let lat = p.lat.clamp(-85.05, 85.05).to_radians();
    let x = (p.lon + 180.0) / 360.0 * scale;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * scale;
    (x, y)
}

fn valid(p: &GeoPoint) -> bool {
    p.lat.is_finite() && p.lon.is_finite() && (-85.0..=85.0).contains(&p.lat) && (-180.0..=180.0).contains(&p.lon)
}

/// The view: zoom and the world pixel at the drawing's top-left corner.
struct View {
    z: u32,
    left: f64,
    top: f64,
}

impl View {
    /// The closest zoom at which every point fits, centred.
    fn fit(points: &[GeoPoint]) -> View {
        let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
        for p in points {
            let (x, y) = world(*p, 0);
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        let mut z = 17;
        while z > 2 {
            let s = f64::from(1u32 << z);
            if (hi.0 - lo.0) * s <= WIDTH * 0.9 && (hi.1 - lo.1) * s <= HEIGHT * 0.9 {
                break;
            }
            z -= 1;
        }
        let s = f64::from(1u32 << z);
        let (cx, cy) = ((lo.0 + hi.0) / 2.0 * s, (lo.1 + hi.1) / 2.0 * s);
        View { z, left: cx - WIDTH / 2.0, top: cy - HEIGHT / 2.0 }
    }

    fn xy(&self, p: GeoPoint) -> (f64, f64) {
        let (x, y) = world(p, self.z);
        (x - self.left, y - self.top)
    }

    /// The longitude and latitude at a drawing position.
    fn lon_lat(&self, x: f64, y: f64) -> (f64, f64) {
        let scale = TILE * f64::from(1u32 << self.z);
        let (wx, wy) = (x + self.left, y + self.top);
        let lon = wx / scale * 360.0 - 180.0;
        let n = std::f64::consts::PI * (1.0 - 2.0 * wy / scale);
        (lon, n.sinh().atan().to_degrees())
    }
}

/// A round step for grid lines about a sixth of `span` apart.
fn grid_step(span: f64) -> f64 {
    let raw = (span / 6.0).max(1e-5);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

/// Tiles under the drawing, or `None` when they would be too many.
fn tiles(view: &View, source: &TileSource) -> Option<String> {
    let (x0, y0) = ((view.left / TILE).floor() as i64, (view.top / TILE).floor() as i64);
    let (x1, y1) = (((view.left + WIDTH) / TILE).floor() as i64, ((view.top + HEIGHT) / TILE).floor() as i64);
    let n = 1i64 << view.z;
    if ((x1 - x0 + 1) * (y1 - y0 + 1)) as usize > MAX_TILES {
        return None;
    }
    let mut out = String::new();
    for ty in y0.max(0)..=y1.min(n - 1) {
        for tx in x0..=x1 {
            let wrapped = tx.rem_euclid(n) as u32;
            let _ = write!(
                out,
                "<image class=\"tile\" href=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"256\" height=\"256\"/>",
                esc(&source.url(view.z, wrapped, ty as u32)),
                tx as f64 * TILE - view.left,
                ty as f64 * TILE - view.top
            );
        }
    }
    Some(out)
}

/// Latitude and longitude lines, labelled.
fn graticule(view: &View) -> String {
    let (west, north) = view.lon_lat(0.0, 0.0);
    let (east, south) = view.lon_lat(WIDTH, HEIGHT);
    let step = grid_step((east - west).max(north - south));
    let mut out =
        String::from("<g class=\"graticule\" stroke=\"#c9d2da\" stroke-width=\"1\" fill=\"#6b7785\" font-size=\"11\">");
    let mut lon = (west / step).ceil() * step;
    while lon <= east {
        let (x, _) = view.xy(GeoPoint { lat: north, lon });
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{HEIGHT}\"/><text x=\"{:.1}\" y=\"12\">{lon:.4}°E</text>",
            x + 2.0
        );
        lon += step;
    }
    let mut lat = (south / step).ceil() * step;
    while lat <= north {
        let (_, y) = view.xy(GeoPoint { lat, lon: west });
        let _ = write!(
            out,
            "<line x1=\"0\" y1=\"{y:.1}\" x2=\"{WIDTH}\" y2=\"{y:.1}\"/><text x=\"2\" y=\"{:.1}\">{lat:.4}°N</text>",
            y - 2.0
        );
        lat += step;
    }
    out.push_str("</g>");
    out
}

/// `GET /web/map?grid=&days=`: hazards (all, coloured by status) and the
/// patrol routes of the last `days` days (default 7, at most 31) under a
/// node.
pub fn page(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let seen = node_of(ctx, r.query("grid"))?;
    let source = ctx.tiles.as_ref();
    let days: i64 = match r.query("days") {
        Some(d) => {
            d.parse().ok().filter(|d| (1..=31).contains(d)).ok_or_else(|| WebError::Bad("天数应为1到31".into()))?
        }
        None => 7,
    };
    let since = ctx.now - days * 86_400_000;
    let names = names(s)?;
    let under =
        |kind: RecordKind| ViewQuery { under: Some(seen.clone()), kind: Some(kind), live: true, ..Default::default() };
    // Every count is the database's; the drawing holds the newest up to
    // its bound, and says so when there are more.
    let hazards_q = ViewQuery { open_first: true, ..under(RecordKind::Hazard) };
    let hazards_total = s.count_records(&hazards_q)?;
    let mut hazards = Vec::new();
    for (v, r) in parsed_views(s.records(&ViewQuery { limit: Some(MAX_HAZARDS), ..hazards_q })?) {
        if let RecordBody::Hazard(h) = &r.body
            && let Some(p) = h.location.gps.filter(valid)
        {
            hazards.push((v.id, v.title.clone(), h.status(), p));
        }
    }
    let patrols_q = ViewQuery { from: Some(since), ..under(RecordKind::Patrol) };
    let patrols_total = s.count_records(&patrols_q)?;
    let mut routes = Vec::new();
    for (v, r) in parsed_views(s.records(&ViewQuery { limit: Some(MAX_ROUTES), ..patrols_q })?) {
        if let RecordBody::Patrol(p) = &r.body {
            let pts: Vec<GeoPoint> = p.route.iter().copied().filter(valid).collect();
            if !pts.is_empty() {
                routes.push((v.grid.clone(), p.slot, p.started_at, pts));
            }
        }
    }
    let title = names.get(&seen).cloned().unwrap_or_else(|| "全县".into());
    let cut = |total: u64, bound: u32, what: &str| {
        if total > u64::from(bound) {
            format!("（超过{bound}{what}，只画最近的{bound}{what}）")
        } else {
            String::new()
        }
    };
    let mut body = format!(
        "<h2 id=\"title\">地图 · {}</h2><p class=\"muted\">隐患共 <span id=\"hazard-total\">{hazards_total}</span> 处，\
         图上 <span id=\"hazard-count\">{}</span> 处有定位{}（红：待处置，橙：处置中，灰：已消除）· \
         近{days}天巡查共 <span id=\"patrol-total\">{patrols_total}</span> 次，画出有轨迹的路线 \
         <span id=\"route-count\">{}</span> 条{} · <a href=\"/web/hazards?grid={}\">隐患列表</a></p>",
        esc(&title),
        hazards.len(),
        cut(hazards_total, MAX_HAZARDS, "处"),
        routes.len(),
        cut(patrols_total, MAX_ROUTES, "次"),
        esc(&seen.to_string()),
    );
    let mut all: Vec<GeoPoint> = hazards.iter().map(|h| h.3).collect();
    all.extend(routes.iter().flat_map(|r| r.3.iter().copied()));
    if all.is_empty() {
        body.push_str("<div class=\"card\" id=\"map-empty\">该范围内没有带定位的隐患或巡查路线。</div>");
        return Ok(out(ctx, "地图", &body));
    }
    let view = View::fit(&all);
    let _ = write!(
        body,
        "<div class=\"card\"><svg id=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" \
         style=\"background:#f4f6f8;max-width:{WIDTH}px\" role=\"img\" aria-label=\"隐患与巡查路线地图\">"
    );
    match source.and_then(|src| tiles(&view, src)) {
        Some(t) => body.push_str(&t),
        None => body.push_str(&graticule(&view)),
    }
    for (grid, slot, at, pts) in &routes {
        let coords: Vec<String> = pts.iter().map(|p| view.xy(*p)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            body,
            "<polyline class=\"patrol\" points=\"{}\" fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" stroke-opacity=\"0.7\">\
             <title>{} {} {}</title></polyline>",
            coords.join(" "),
            esc(names.get(grid).map(String::as_str).unwrap_or_default()),
            esc(slot.label_zh()),
            time(*at)
        );
    }
    for (id, title, status, p) in &hazards {
        let (x, y) = view.xy(*p);
        let color = match status {
            HazardStatus::Open => "#b3261e",
            HazardStatus::Handling => "#d97706",
            HazardStatus::Resolved => "#8a949e",
        };
        let _ = write!(
            body,
            "<a href=\"/web/hazards/{id}\"><circle class=\"hazard\" data-id=\"{id}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"7\" \
             fill=\"{color}\" stroke=\"#fff\" stroke-width=\"2\"><title>{}（{}）</title></circle></a>",
            esc(title),
            esc(status.label_zh())
        );
    }
    body.push_str("</svg>");
    if let Some(src) = source.filter(|s| !s.attribution.is_empty()) {
        let _ = write!(body, "<p class=\"muted\" id=\"attribution\">底图：{}</p>", esc(&src.attribution));
    }
    body.push_str("</div>");
    Ok(match source {
        Some(src) => Out::HtmlImages {
            html: super::html::page("地图", Some(&ctx.header()), &body),
            img_origin: src.origin.clone(),
        },
        None => out(ctx, "地图", &body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_template_needs_its_placeholders_and_a_fixed_host() {
        let ok = TileSource::parse("https://t0.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY", "天地图")
            .unwrap();
        assert_eq!(ok.origin(), "https://t0.tianditu.gov.cn");
        assert_eq!(ok.url(12, 3, 4), "https://t0.tianditu.gov.cn/DataServer?T=vec_w&x=3&y=4&l=12&tk=KEY");
        for bad in [
            "ftp://x/{z}/{x}/{y}",
            "https://x/{z}/{x}",
            "https://{s}.x/{z}/{x}/{y}",
            "https://x/{z}/{x}/{y}\" onload=\"",
            "https:///{z}/{x}/{y}",
        ] {
            assert!(TileSource::parse(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn points_fit_inside_the_drawing_and_keep_their_places() {
        let pts = [GeoPoint { lat: 33.90, lon: 106.28 }, GeoPoint { lat: 33.96, lon: 106.35 }];
        let v = View::fit(&pts);
        for p in pts {
            let (x, y) = v.xy(p);
            assert!((0.0..=WIDTH).contains(&x) && (0.0..=HEIGHT).contains(&y), "{x},{y}");
            let (lon, lat) = v.lon_lat(x, y);
            assert!((lon - p.lon).abs() < 1e-9 && (lat - p.lat).abs() < 1e-9);
        }
        let (a, b) = (v.xy(pts[0]), v.xy(pts[1]));
        assert!(b.0 > a.0 && b.1 < a.1, "east is right, north is up");
        // One point alone still gets a view.
        let one = View::fit(&pts[..1]);
        assert_eq!(one.z, 17);
    }

    #[test]
    fn grid_steps_are_round() {
        assert_eq!(grid_step(0.06), 0.01);
        assert_eq!(grid_step(0.5), 0.1);
        assert_eq!(grid_step(2.0), 0.5);
    }
}
