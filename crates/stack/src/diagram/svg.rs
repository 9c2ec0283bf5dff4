//! The drawing as SVG, laid out as the seed's picture reads: the zones left to right in
//! the config's order, the public, private and isolated subnets as rows across them, the
//! ALB across the public row and RDS across the database row. Edges run in two lanes at
//! each subnet's right, and every label stands clear of every line.

use std::fmt::Write;

use three_tier_core::SubnetRole;

use super::{Diagram, Group, GroupKind, Line, Node, Shape};

/// An 11 px Helvetica character's width, generously: no text outgrows the room measured
/// for it.
const CHAR: f64 = 6.8;
const LINE: f64 = 14.0;
const PAD: f64 = 12.0;
/// Between two rows of subnets: room for an edge's label of two lines.
const ROW_GAP: f64 = 48.0;
const ZONE_GAP: f64 = 28.0;
/// At each subnet's right, the lanes edges run along: A (36 from the right) carries the
/// ALB's traffic down to an instance and on to the database, B (16 from the right) the
/// instances' egress up to the NAT gateway and on to the internet gateway.
const LANES: f64 = 48.0;
const LANE_A: f64 = 36.0;
const LANE_B: f64 = 16.0;
/// Between the NAT gateway and the ALB: room for the egress label.
const STRIP: f64 = 26.0;
const INTERNET_RADIUS: f64 = 34.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    /// Its four sides.
    fn sides(&self) -> [Segment; 4] {
        let (l, t, r, b) = (self.x, self.y, self.right(), self.bottom());
        [((l, t), (r, t)), ((r, t), (r, b)), ((l, b), (r, b)), ((l, t), (l, b))]
    }
    /// Whether `segment` passes through its inside.
    pub(super) fn crossed_by(&self, ((x1, y1), (x2, y2)): Segment) -> bool {
        // Liang-Barsky clipping: a part of the segment lies strictly inside.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let (mut enter, mut leave) = (0.0_f64, 1.0_f64);
        for (p, q) in [(-dx, x1 - self.x), (dx, self.right() - x1), (-dy, y1 - self.y), (dy, self.bottom() - y1)] {
            if p == 0.0 {
                if q <= 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    enter = enter.max(t);
                } else {
                    leave = leave.min(t);
                }
            }
        }
        enter < leave
    }
    pub(super) fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }
}

/// A straight piece of a line, from one point to another.
pub(super) type Segment = ((f64, f64), (f64, f64));

/// Where everything goes.
#[derive(Debug, Default)]
pub(super) struct Layout {
    width: f64,
    height: f64,
    /// Boxes around groups and resources, in drawing order (outer first).
    pub frames: Vec<Frame>,
    pub texts: Vec<Text>,
    pub lines: Vec<Drawn>,
}

#[derive(Debug)]
pub(super) struct Frame {
    pub rect: Rect,
    pub kind: FrameKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FrameKind {
    Group(GroupKind),
    Node(Shape),
}

#[derive(Debug)]
pub(super) struct Text {
    pub rect: Rect,
    pub lines: Vec<String>,
    pub align: Align,
    pub red: bool,
}

/// Which edge of its box a text keeps to: a label right of a line starts at the box's
/// left, one left of a line ends at the box's right, so a font wider than measured grows
/// away from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Center,
    Right,
}

/// Where an edge's label goes: beside a vertical line at x, on one side.
enum Beside {
    Left(f64),
    Right(f64),
}

#[derive(Debug)]
pub(super) struct Drawn {
    pub points: Vec<(f64, f64)>,
    pub line: Line,
}

impl Drawn {
    pub(super) fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        self.points.windows(2).map(|pair| (pair[0], pair[1]))
    }
}

impl Text {
    /// `lines` measured, their box's left (or centre, or right, as `align` says) at `x`
    /// and top at `y`.
    fn at(lines: Vec<String>, x: f64, y: f64, align: Align, red: bool) -> Text {
        let (w, h) = (text_width(&lines), text_height(&lines));
        let left = match align {
            Align::Left => x,
            Align::Center => x - w / 2.0,
            Align::Right => x - w,
        };
        Text { rect: Rect { x: left, y, w, h }, lines, align, red }
    }
}

fn text_width(lines: &[String]) -> f64 {
    lines.iter().map(|line| line.chars().count()).max().unwrap_or(0) as f64 * CHAR
}

fn text_height(lines: &[String]) -> f64 {
    lines.len() as f64 * LINE
}

/// A node's box, its label inside with a margin.
fn node_size(node: &Node) -> (f64, f64) {
    ((text_width(&node.label) + 2.0 * PAD).max(100.0), text_height(&node.label) + PAD)
}

/// An edge's label on at most two lines: what lets the traffic in, then the ports.
fn edge_lines(label: &str) -> Vec<String> {
    match label.split_once(": ") {
        Some((what, ports)) => vec![format!("{what}:"), ports.to_owned()],
        None => vec![label.to_owned()],
    }
}

/// A subnet's words: its kind and name, then its address and id.
fn subnet_header(subnet: &Group) -> Vec<String> {
    let words = subnet.nodes.iter().filter(|n| n.shape == Shape::Text).flat_map(|n| n.label.iter().cloned());
    subnet.label.iter().cloned().chain(words).collect()
}

fn residents(subnet: &Group) -> impl Iterator<Item = &Node> {
    subnet.nodes.iter().filter(|n| n.shape != Shape::Text)
}

fn role_of(group: &Group) -> Option<SubnetRole> {
    match group.kind {
        GroupKind::Subnet(role) => Some(role),
        _ => None,
    }
}

impl Diagram {
    /// The drawing as SVG.
    pub fn svg(&self) -> String {
        render(&self.title, &self.layout())
    }

    pub(super) fn layout(&self) -> Layout {
        let mut out = Layout::default();
        let region = &self.top;
        // Every drawing this tool makes has its VPC; without one, an empty picture.
        let Some(vpc) = region.groups.iter().find(|g| g.kind == GroupKind::Vpc) else { return out };
        let zones: Vec<&Group> = vpc.groups.iter().filter(|g| g.kind == GroupKind::Zone).collect();
        let vpc_node = |id: &str| vpc.nodes.iter().find(|n| n.id == id);
        let subnets = || zones.iter().flat_map(|z| &z.groups);
        let edge_label = |from: &str, to: &str| {
            self.edges.iter().find(|e| e.from == from && e.to == to).and_then(|e| e.label.clone())
        };

        // The room a subnet's words, resources and the labels beside it need.
        let mut content = 0.0_f64;
        for subnet in subnets() {
            content = content.max(text_width(&subnet_header(subnet)));
            content = residents(subnet).map(|n| node_size(n).0).fold(content, f64::max);
        }
        content = content.max(text_width(&vpc.label));
        for band in ["alb", "database"].into_iter().filter_map(vpc_node) {
            content = content.max(text_width(&band.label) + 2.0 * PAD);
        }
        for edge in &self.edges {
            if let Some(label) = &edge.label {
                content = content.max(text_width(&edge_lines(label)) - PAD);
            }
        }
        let subnet_w = content + 2.0 * PAD + LANES;
        let zone_w = subnet_w + 2.0 * PAD;

        // Each row as high as its highest subnet, in every zone.
        let header_h = |role: SubnetRole| {
            let highest = subnets().filter(|s| role_of(s) == Some(role)).map(|s| text_height(&subnet_header(s)));
            highest.fold(0.0, f64::max)
        };
        let stack_h = |role: SubnetRole| {
            let heights = subnets()
                .filter(|s| role_of(s) == Some(role))
                .map(|s| residents(s).map(|n| node_size(n).1 + PAD).sum());
            heights.fold(0.0, f64::max)
        };
        let band_h = |id: &str| vpc_node(id).map_or(0.0, |n| node_size(n).1);
        let public_h = PAD + header_h(SubnetRole::Alb) + PAD + stack_h(SubnetRole::Alb) + STRIP + band_h("alb") + PAD;
        let private_h = PAD + header_h(SubnetRole::App) + PAD + stack_h(SubnetRole::App).max(LINE);
        let isolated_h = PAD + header_h(SubnetRole::Db) + PAD + band_h("database") + PAD;

        // Top down: the title, the region, the internet and its gateway, the VPC.
        let region_x = 8.0;
        let region_y = 8.0 + LINE + 8.0;
        let vpc_x = region_x + PAD;
        let zone_x = |index: usize| vpc_x + PAD + index as f64 * (zone_w + ZONE_GAP);
        // The internet's way in runs between the first two zones.
        let gap_x = zone_x(0) + zone_w + ZONE_GAP / 2.0;
        let internet_top = region_y + PAD + LINE + PAD;
        let internet =
            Rect { x: gap_x - INTERNET_RADIUS, y: internet_top, w: 2.0 * INTERNET_RADIUS, h: 2.0 * INTERNET_RADIUS };
        let igw = vpc_node("igw").map(|node| {
            let (w, h) = node_size(node);
            (node, Rect { x: gap_x - w / 2.0, y: internet.bottom() + 28.0, w, h })
        });
        let igw_rect = igw.as_ref().map_or(Rect { x: gap_x, y: internet.bottom(), w: 0.0, h: 0.0 }, |(_, r)| *r);
        let way_in = edge_label("igw", "alb").map(|l| edge_lines(&l)).unwrap_or_default();
        let vpc_y = igw_rect.bottom() + (text_height(&way_in) + 2.0 * PAD).max(40.0);
        let zones_y = vpc_y + PAD + text_height(&vpc.label) + PAD;
        let rows_y = zones_y + PAD + LINE + PAD;
        let row_y = |role: SubnetRole| match role {
            SubnetRole::Alb => rows_y,
            SubnetRole::App => rows_y + public_h + ROW_GAP,
            SubnetRole::Db => rows_y + public_h + ROW_GAP + private_h + ROW_GAP,
        };
        let row_h = |role: SubnetRole| match role {
            SubnetRole::Alb => public_h,
            SubnetRole::App => private_h,
            SubnetRole::Db => isolated_h,
        };
        let zones_h = row_y(SubnetRole::Db) + isolated_h + PAD - zones_y;
        let vpc_rect = Rect {
            x: vpc_x,
            y: vpc_y,
            w: zone_x(zones.len().max(1)) - ZONE_GAP + PAD - vpc_x,
            h: zones_y + zones_h + PAD - vpc_y,
        };
        let region_rect = Rect {
            x: region_x,
            y: region_y,
            w: vpc_rect.right() + PAD - region_x,
            h: vpc_rect.bottom() + PAD - region_y,
        };
        out.width = region_rect.right() + 8.0;
        out.height = region_rect.bottom() + 8.0;

        // A group's box, its words at the top left.
        let group = |out: &mut Layout, group: &Group, lines: Vec<String>, rect: Rect| {
            out.frames.push(Frame { rect, kind: FrameKind::Group(group.kind), id: group.id.clone() });
            out.texts.push(Text::at(lines, rect.x + PAD, rect.y + PAD, Align::Left, false));
        };
        group(&mut out, region, region.label.clone(), region_rect);
        group(&mut out, vpc, vpc.label.clone(), vpc_rect);

        // Where each resource stands, by id.
        let mut placed: Vec<(String, Rect, usize)> = Vec::new();
        let mut node = |out: &mut Layout, node: &Node, rect: Rect, column: usize| {
            out.frames.push(Frame { rect, kind: FrameKind::Node(node.shape), id: node.id.clone() });
            let top = rect.cy() - text_height(&node.label) / 2.0;
            out.texts.push(Text::at(node.label.clone(), rect.cx(), top, Align::Center, false));
            placed.push((node.id.clone(), rect, column));
        };
        if let Some(internet_node) = region.nodes.iter().find(|n| n.shape == Shape::Circle) {
            node(&mut out, internet_node, internet, 0);
        }
        if let Some((igw_node, rect)) = &igw {
            node(&mut out, igw_node, *rect, 0);
        }

        // The zones, each a column of its subnets; what lives in a subnet stands under its
        // words, at the left, clear of the lanes.
        for (column, zone) in zones.iter().enumerate() {
            let zone_rect = Rect { x: zone_x(column), y: zones_y, w: zone_w, h: zones_h };
            group(&mut out, zone, zone.label.clone(), zone_rect);
            for subnet in &zone.groups {
                let Some(role) = role_of(subnet) else { continue };
                let rect = Rect { x: zone_rect.x + PAD, y: row_y(role), w: subnet_w, h: row_h(role) };
                group(&mut out, subnet, subnet_header(subnet), rect);
                let mut y = rect.y + PAD + header_h(role) + PAD;
                for resident in residents(subnet) {
                    let (w, h) = node_size(resident);
                    node(&mut out, resident, Rect { x: rect.x + PAD, y, w, h }, column);
                    y += h + PAD;
                }
            }
        }
        // The ALB across the public row, RDS across the isolated one, at the rows' bottoms
        // and across every zone (so each zone's lines meet them), their words at the left.
        for (id, role) in [("alb", SubnetRole::Alb), ("database", SubnetRole::Db)] {
            let Some(band) = vpc_node(id) else { continue };
            let h = node_size(band).1;
            let (left, right) = (zone_x(0) + 2.0 * PAD, zone_x(zones.len().max(1) - 1) + subnet_w);
            let rect = Rect { x: left, y: row_y(role) + row_h(role) - PAD - h, w: right - left, h };
            out.frames.push(Frame { rect, kind: FrameKind::Node(band.shape), id: band.id.clone() });
            let top = rect.cy() - text_height(&band.label) / 2.0;
            out.texts.push(Text::at(band.label.clone(), rect.x + PAD, top, Align::Left, false));
            placed.push((band.id.clone(), rect, 0));
        }

        // The edges, each along its lanes; its label where no other line runs.
        let find =
            |id: &str| placed.iter().find(|(placed_id, ..)| placed_id == id).map(|(_, rect, column)| (*rect, *column));
        let lane = |column: usize, from_right: f64| zone_x(column) + PAD + subnet_w - from_right;
        let mut egress_labelled = Vec::new();
        for edge in &self.edges {
            if matches!(edge.line, Line::Placed | Line::Layout) {
                continue;
            }
            let (Some((from, from_column)), Some((to, to_column))) = (find(&edge.from), find(&edge.to)) else {
                continue;
            };
            let red = edge.line == Line::Closed;
            let label = edge.label.as_deref().map(edge_lines);
            let labelled = |out: &mut Layout, beside: Beside, y_mid: f64| {
                let Some(lines) = label.clone() else { return };
                let top = y_mid - text_height(&lines) / 2.0;
                let (x, align) = match beside {
                    Beside::Left(line) => (line - 6.0, Align::Right),
                    Beside::Right(line) => (line + 6.0, Align::Left),
                };
                out.texts.push(Text::at(lines, x, top, align, red));
            };
            let points = match (edge.from.as_str(), edge.to.as_str()) {
                ("internet", _) => vec![(from.cx(), from.bottom()), (to.cx(), to.y)],
                ("igw", "alb") => {
                    labelled(&mut out, Beside::Right(gap_x), (from.bottom() + vpc_y) / 2.0);
                    vec![(gap_x, from.bottom()), (gap_x, to.y)]
                }
                ("alb", _) => {
                    let x = lane(to_column, LANE_A);
                    labelled(&mut out, Beside::Left(x), row_y(SubnetRole::Alb) + public_h + ROW_GAP / 2.0);
                    vec![(x, from.bottom()), (x, to.cy()), (to.right(), to.cy())]
                }
                (_, "database") => {
                    let x = lane(from_column, LANE_A);
                    labelled(&mut out, Beside::Left(x), row_y(SubnetRole::App) + private_h + ROW_GAP / 2.0);
                    vec![(from.right(), from.cy() + 4.0), (x, from.cy() + 4.0), (x, to.y)]
                }
                (_, "igw") => {
                    let x = lane(from_column, LANE_B);
                    // Labelled (only when closed) in the zone's top row, beside its name.
                    labelled(&mut out, Beside::Left(x), zones_y + PAD + LINE / 2.0);
                    let start = [(from.right(), from.cy() - 4.0), (x, from.cy() - 4.0)];
                    // Into the gateway from below when the lane runs under it, else from
                    // the side.
                    let end = match x {
                        x if to.x < x && x < to.right() => vec![(x, to.bottom())],
                        x if x < to.x => vec![(x, to.cy()), (to.x, to.cy())],
                        x => vec![(x, to.cy()), (to.right(), to.cy())],
                    };
                    start.into_iter().chain(end).collect()
                }
                _ if edge.line == Line::Egress || red => {
                    // An instance's way out to its NAT gateway, labelled once under it.
                    let x = lane(from_column, LANE_B);
                    if !egress_labelled.contains(&edge.to) {
                        egress_labelled.push(edge.to.clone());
                        let strip = to.bottom() + (PAD + STRIP) / 2.0;
                        labelled(&mut out, Beside::Left(lane(to_column, LANE_B)), strip);
                    }
                    vec![
                        (from.right(), from.cy() - 4.0),
                        (x, from.cy() - 4.0),
                        (x, to.cy() + 4.0),
                        (to.right(), to.cy() + 4.0),
                    ]
                }
                // Any other edge (none today): straight.
                _ => vec![(from.cx(), from.bottom()), (to.cx(), to.y)],
            };
            out.lines.push(Drawn { points, line: edge.line });
        }
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render(title: &str, layout: &Layout) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">",
        w = layout.width,
        h = layout.height
    );
    svg.push_str(
        "  <defs>\n    <marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker>\n    <marker id=\"tee\" \
         viewBox=\"0 0 10 10\" refX=\"5\" refY=\"5\" markerWidth=\"10\" markerHeight=\"10\" orient=\"auto\"><path \
         d=\"M5,0 L5,10\" stroke=\"#d00\" stroke-width=\"2\"/></marker>\n  </defs>\n",
    );
    let _ = writeln!(svg, "  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "  <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        layout.width / 2.0,
        8.0 + LINE,
        escape(title)
    );
    for frame in &layout.frames {
        let Rect { x, y, w, h } = frame.rect;
        let style = match frame.kind {
            FrameKind::Group(GroupKind::Region) => "fill=\"none\" stroke=\"#555\" stroke-dasharray=\"6,4\"",
            FrameKind::Group(GroupKind::Vpc) => "fill=\"none\" stroke=\"#2e7d32\" stroke-width=\"1.5\"",
            FrameKind::Group(GroupKind::Zone) => "fill=\"none\" stroke=\"#1565c0\" stroke-dasharray=\"4,3\"",
            FrameKind::Group(GroupKind::Subnet(SubnetRole::Alb)) => "fill=\"#e8f5e9\" stroke=\"#66bb6a\"",
            FrameKind::Group(GroupKind::Subnet(SubnetRole::App)) => "fill=\"#e3f2fd\" stroke=\"#42a5f5\"",
            FrameKind::Group(GroupKind::Subnet(SubnetRole::Db)) => "fill=\"#f3e5f5\" stroke=\"#ab47bc\"",
            FrameKind::Node(Shape::Circle) => {
                let _ = writeln!(
                    svg,
                    "  <circle id=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\" fill=\"white\" stroke=\"#333\"/>",
                    escape(&frame.id),
                    x + w / 2.0,
                    y + h / 2.0,
                    w / 2.0
                );
                continue;
            }
            FrameKind::Node(Shape::Cylinder) => "fill=\"white\" stroke=\"#333\" rx=\"14\"",
            FrameKind::Node(_) => "fill=\"white\" stroke=\"#333\" rx=\"6\"",
        };
        let id = escape(&frame.id);
        let _ =
            writeln!(svg, "  <rect id=\"{id}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" {style}/>");
    }
    for drawn in &layout.lines {
        let points: Vec<String> = drawn.points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let style = match drawn.line {
            Line::Egress => "stroke=\"#555\" stroke-dasharray=\"5,4\" marker-end=\"url(#arrow)\"",
            Line::Closed => "stroke=\"#d00\" stroke-width=\"1.5\" marker-end=\"url(#tee)\"",
            _ => "stroke=\"#333\" marker-end=\"url(#arrow)\"",
        };
        let _ = writeln!(svg, "  <polyline points=\"{}\" fill=\"none\" {style}/>", points.join(" "));
    }
    for text in &layout.texts {
        let (x, anchor) = match text.align {
            Align::Left => (text.rect.x, ""),
            Align::Center => (text.rect.cx(), " text-anchor=\"middle\""),
            Align::Right => (text.rect.right(), " text-anchor=\"end\""),
        };
        let fill = if text.red { " fill=\"#d00\"" } else { "" };
        for (index, line) in text.lines.iter().enumerate() {
            // A line's baseline, a little above the bottom of its row.
            let y = text.rect.y + (index as f64 + 1.0) * LINE - 3.0;
            let _ = writeln!(svg, "  <text x=\"{x:.1}\" y=\"{y:.1}\"{anchor}{fill}>{}</text>", escape(line));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

impl Diagram {
    /// What would make the picture hard to read, one line each: a line drawn through a
    /// label, or two labels on each other, as far as the measured text widths tell. The
    /// tests hold it empty for several configs and for a deployed stack's ids.
    pub fn clutter(&self) -> Vec<String> {
        let layout = self.layout();
        let edges = layout.lines.iter().flat_map(Drawn::segments);
        let segments: Vec<Segment> = edges.chain(layout.frames.iter().flat_map(|frame| frame.rect.sides())).collect();
        let mut found = Vec::new();
        for (index, text) in layout.texts.iter().enumerate() {
            let words = text.lines.join(" / ");
            if let Some(((x1, y1), (x2, y2))) = segments.iter().find(|segment| text.rect.crossed_by(**segment)) {
                found.push(format!("a line ({x1:.0},{y1:.0})-({x2:.0},{y2:.0}) runs through \"{words}\""));
            }
            for other in &layout.texts[index + 1..] {
                if text.rect.overlaps(&other.rect) {
                    found.push(format!("\"{words}\" and \"{}\" overlap", other.lines.join(" / ")));
                }
            }
        }
        found
    }
}
