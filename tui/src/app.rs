//! The terminal app (ratatui + crossterm): five screens over one demo run, which executes on
//! a worker thread and reports [`Event`]s over a channel; the UI polls keys and the channel
//! and never blocks. The terminal is restored on exit and on panic.
//!
//! Keys: `s` start · `p`/space pause/resume · `x` stop · `d` next dataset · Tab/←/→ or 1–5
//! screens · `?` help · `q` quit.

use std::io;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, Borders, Cell, Chart, Dataset as ChartData, Gauge,
    GraphType, Paragraph, Row, Table, Tabs, Widget, Wrap,
};

use crate::demo::{self, Control, DataInfo, Event, KeyInfo, StepInfo, Summary};

/// The screens, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Data,
    Keys,
    Training,
    Results,
    Log,
}

impl Screen {
    pub const ALL: [Screen; 5] = [
        Screen::Data,
        Screen::Keys,
        Screen::Training,
        Screen::Results,
        Screen::Log,
    ];
    pub fn title(self) -> &'static str {
        match self {
            Self::Data => "1 Data",
            Self::Keys => "2 Keys & parameters",
            Self::Training => "3 Training",
            Self::Results => "4 Results",
            Self::Log => "5 Log",
        }
    }
    fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// Where the run is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    Idle,
    Running,
    Paused,
    Stopping,
    Finished,
    Failed(String),
}

/// What the key handler asks the runner to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Start,
    Pause,
    Resume,
    Stop,
    Quit,
}

/// The app's state.
#[derive(Debug)]
pub struct App {
    pub args: demo::Args,
    pub screen: Screen,
    pub state: RunState,
    pub phase: &'static str,
    pub data: Option<DataInfo>,
    pub keys: Option<KeyInfo>,
    pub steps: Vec<StepInfo>,
    pub summary: Option<Summary>,
    pub log: Vec<String>,
    pub show_help: bool,
    pub quit: bool,
}

const DATASETS: [&str; 3] = ["blood", "organa", "mnist"];

impl App {
    pub fn new(args: demo::Args) -> Self {
        Self {
            args,
            screen: Screen::Data,
            state: RunState::Idle,
            phase: "ready",
            data: None,
            keys: None,
            steps: Vec::new(),
            summary: None,
            log: vec!["press s to start encrypted training".into()],
            show_help: false,
            quit: false,
        }
    }

    fn running(&self) -> bool {
        matches!(
            self.state,
            RunState::Running | RunState::Paused | RunState::Stopping
        )
    }

    /// The state machine of the keys.
    pub fn handle_key(&mut self, key: KeyCode) -> Action {
        match key {
            KeyCode::Char('q') | KeyCode::Esc => {
                self.quit = true;
                Action::Quit
            }
            KeyCode::Char('?') | KeyCode::Char('h') => {
                self.show_help = !self.show_help;
                Action::None
            }
            KeyCode::Char('s') if !self.running() => {
                self.state = RunState::Running;
                self.steps.clear();
                self.summary = None;
                self.data = None;
                self.keys = None;
                self.phase = "starting";
                self.screen = Screen::Training;
                self.log.push(format!(
                    "start: {} on preset {}, {} steps",
                    self.args.dataset,
                    self.args.preset_name(),
                    self.args.steps
                ));
                Action::Start
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => match self.state {
                RunState::Running => {
                    self.state = RunState::Paused;
                    self.log.push("paused".into());
                    Action::Pause
                }
                RunState::Paused => {
                    self.state = RunState::Running;
                    self.log.push("resumed".into());
                    Action::Resume
                }
                _ => Action::None,
            },
            KeyCode::Char('x') if self.running() => {
                self.state = RunState::Stopping;
                self.log.push("stopping after the current step".into());
                Action::Stop
            }
            KeyCode::Char('d') if !self.running() => {
                let i = DATASETS
                    .iter()
                    .position(|d| *d == self.args.dataset)
                    .map_or(0, |i| (i + 1) % DATASETS.len());
                self.args.dataset = DATASETS.get(i).unwrap_or(&"blood").to_string();
                self.log.push(format!("dataset: {}", self.args.dataset));
                self.data = None;
                Action::None
            }
            KeyCode::Tab | KeyCode::Right => {
                self.screen = Screen::ALL
                    .get((self.screen.index() + 1) % Screen::ALL.len())
                    .copied()
                    .unwrap_or(Screen::Data);
                Action::None
            }
            KeyCode::BackTab | KeyCode::Left => {
                self.screen = Screen::ALL
                    .get((self.screen.index() + Screen::ALL.len() - 1) % Screen::ALL.len())
                    .copied()
                    .unwrap_or(Screen::Data);
                Action::None
            }
            KeyCode::Char(c @ '1'..='5') => {
                let i = (c as usize) - ('1' as usize);
                self.screen = Screen::ALL.get(i).copied().unwrap_or(self.screen);
                Action::None
            }
            _ => Action::None,
        }
    }

    /// Applies an event of the worker.
    pub fn apply(&mut self, e: Event) {
        match e {
            Event::Phase(p) => {
                self.phase = p;
                self.log.push(format!("phase: {p}"));
            }
            Event::Data(d) => self.data = Some(d),
            Event::Keys(k) => {
                self.log.push(format!(
                    "keys: {} N = 2^{}, keygen {:.1} s, encrypt {:.1} s",
                    k.preset, k.log_n, k.keygen_s, k.encrypt_s
                ));
                self.keys = Some(k);
            }
            Event::Step(s) => {
                self.log.push(format!(
                    "step {}: val acc enc {:.3} mirror {:.3} exact {:.3}, {:.2} s",
                    s.step, s.acc[0], s.acc[1], s.acc[2], s.seconds
                ));
                self.steps.push(*s);
            }
            Event::Log(l) => self.log.push(l),
            Event::Done(s) => {
                self.log.push(format!(
                    "finished: test accuracy enc {:.4} mirror {:.4} exact {:.4}",
                    s.test[0].accuracy, s.test[1].accuracy, s.test[2].accuracy
                ));
                self.summary = Some(*s);
                self.state = RunState::Finished;
                self.phase = "finished";
                self.screen = Screen::Results;
            }
            Event::Failed(m) => {
                self.log.push(format!("failed: {m}"));
                self.state = RunState::Failed(m);
                self.phase = "failed";
            }
        }
    }

    fn state_text(&self) -> String {
        match &self.state {
            RunState::Idle => "idle".into(),
            RunState::Running => format!("running: {}", self.phase),
            RunState::Paused => "paused".into(),
            RunState::Stopping => "stopping".into(),
            RunState::Finished => "finished".into(),
            RunState::Failed(_) => "failed".into(),
        }
    }
}

const ENC: Color = Color::Magenta;
const MIR: Color = Color::Cyan;
const EXA: Color = Color::Yellow;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [top, body, bottom] = split_v(
            area,
            [
                Constraint::Length(1),
                Constraint::Min(3),
                Constraint::Length(1),
            ],
        );
        let titles: Vec<&str> = Screen::ALL.iter().map(|s| s.title()).collect();
        let [tabs_area, state_area] = split_h(top, [Constraint::Min(10), Constraint::Length(22)]);
        Tabs::new(titles)
            .select(self.screen.index())
            .highlight_style(Style::new().bold().reversed())
            .divider("|")
            .render(tabs_area, buf);
        Paragraph::new(format!("{} ", self.state_text()))
            .right_aligned()
            .bold()
            .render(state_area, buf);
        if self.show_help {
            render_help(body, buf);
        } else {
            match self.screen {
                Screen::Data => render_data(self, body, buf),
                Screen::Keys => render_keys(self, body, buf),
                Screen::Training => render_training(self, body, buf),
                Screen::Results => render_results(self, body, buf),
                Screen::Log => render_log(self, body, buf),
            }
        }
        let help = if self.running() {
            " p pause/resume · x stop · Tab screens · ? help · q quit"
        } else {
            " s start · d dataset · Tab screens · ? help · q quit"
        };
        Paragraph::new(Line::from(vec![
            Span::raw(help),
            Span::raw(format!(
                "   [{} · {}]",
                self.args.dataset,
                self.args.preset_name()
            ))
            .dim(),
        ]))
        .style(Style::new().reversed())
        .render(bottom, buf);
    }
}

fn split_v<const N: usize>(area: Rect, c: [Constraint; N]) -> [Rect; N] {
    Layout::default()
        .direction(Direction::Vertical)
        .constraints(c)
        .areas(area)
}

fn split_h<const N: usize>(area: Rect, c: [Constraint; N]) -> [Rect; N] {
    Layout::default()
        .direction(Direction::Horizontal)
        .constraints(c)
        .areas(area)
}

fn block(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(title)
}

fn render_help(area: Rect, buf: &mut Buffer) {
    let text = vec![
        Line::from("blindtuner: the cloud trains a softmax head on CKKS ciphertexts;".bold()),
        Line::from("the plaintext mirror runs the same algorithm on f64 slot vectors, and the"),
        Line::from("exact reference is ordinary softmax regression with Nesterov momentum."),
        Line::from(""),
        Line::from("s      start a run on the selected dataset"),
        Line::from("p, ␣   pause / resume (between steps)"),
        Line::from("x      stop after the current step, keep the results so far"),
        Line::from("d      next dataset (blood, organa, mnist) when idle"),
        Line::from("Tab ←→ 1-5   switch screens"),
        Line::from("?      this help          q, Esc   quit"),
    ];
    Paragraph::new(text)
        .block(block("Help"))
        .wrap(Wrap { trim: false })
        .render(area, buf);
}

fn render_data(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(d) = &app.data else {
        Paragraph::new(vec![
            Line::from(format!(
                "Dataset: {} (embedded DeiT-tiny features)",
                app.args.dataset
            )),
            Line::from(""),
            Line::from("Press s to load, encrypt and train; d switches the dataset."),
        ])
        .block(block("Data"))
        .render(area, buf);
        return;
    };
    let [info, hist] = split_v(area, [Constraint::Length(5), Constraint::Min(3)]);
    Paragraph::new(vec![
        Line::from(format!(
            "{}: {} classes, {} features per sample (DeiT-tiny CLS)",
            d.dataset,
            d.class_names.len(),
            d.features
        )),
        Line::from(format!(
            "train {} (encrypted)   validation {}   test {}",
            d.train, d.val, d.test
        )),
        Line::from("standardised at the hospital with statistics it keeps".dim()),
    ])
    .block(block("Data"))
    .render(info, buf);
    let bars: Vec<Bar> = d
        .histogram
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let name = d
                .class_names
                .get(k)
                .map_or(String::new(), |s| s.chars().take(6).collect::<String>());
            Bar::default().value(n as u64).label(Line::from(name))
        })
        .collect();
    let n = d.histogram.len().max(1) as u16;
    let width = ((hist.width.saturating_sub(2)) / n)
        .saturating_sub(1)
        .clamp(1, 9);
    BarChart::default()
        .block(block("Training samples per class"))
        .data(BarGroup::default().bars(&bars))
        .bar_width(width)
        .bar_gap(1)
        .render(hist, buf);
}

fn render_keys(app: &App, area: Rect, buf: &mut Buffer) {
    let lines = match &app.keys {
        None => vec![
            Line::from(format!("Preset: {}", app.args.preset_name())),
            Line::from("Keys are generated when the run starts (s)."),
        ],
        Some(k) => vec![
            Line::from(format!("preset          {} ({})", k.preset, k.security)),
            Line::from(format!(
                "ring dimension  N = 2^{}  ({} slots)",
                k.log_n,
                1u64 << k.log_n.saturating_sub(1)
            )),
            Line::from(format!(
                "levels          {}   log QP {:.0} bits",
                k.levels, k.log_qp
            )),
            Line::from(format!(
                "eval keys       relinearisation + {} rotations, {}",
                k.rotation_keys,
                crate::files::human(k.eval_key_bytes)
            )),
            Line::from(format!(
                "ciphertext      {} (seeded)   {} rows per chunk, {} chunks",
                crate::files::human(k.ciphertext_bytes),
                k.rows_per_chunk,
                k.chunks
            )),
            Line::from(format!(
                "keygen {:.1} s   encryption {:.1} s",
                k.keygen_s, k.encrypt_s
            )),
            Line::from("secret key: hospital only; refresh: hospital-aided (masked)".dim()),
        ],
    };
    Paragraph::new(lines)
        .block(block("Keys & parameters"))
        .render(area, buf);
}

fn series(steps: &[StepInfo], f: impl Fn(&StepInfo) -> f64) -> Vec<(f64, f64)> {
    steps.iter().map(|s| (s.step as f64, f(s))).collect()
}

fn chart<'a>(title: &'a str, data: &'a [Vec<(f64, f64)>; 3], total: f64) -> Chart<'a> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in data.iter().flatten() {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let names = ["encrypted", "mirror", "exact"];
    let colors = [ENC, MIR, EXA];
    let sets: Vec<ChartData> = data
        .iter()
        .zip(names)
        .zip(colors)
        .map(|((d, n), c)| {
            ChartData::default()
                .name(n)
                .marker(symbols::Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(c))
                .data(d)
        })
        .collect();
    Chart::new(sets)
        .block(block(title))
        .x_axis(
            Axis::default()
                .bounds([0.0, total.max(1.0)])
                .labels(vec![Span::raw("0"), Span::raw(format!("{total:.0}"))]),
        )
        .y_axis(Axis::default().bounds([lo, hi]).labels(vec![
            Span::raw(format!("{lo:.2}")),
            Span::raw(format!("{hi:.2}")),
        ]))
        .legend_position(Some(ratatui::widgets::LegendPosition::BottomRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 1), Constraint::Ratio(1, 1)))
}

fn render_training(app: &App, area: Rect, buf: &mut Buffer) {
    let [gauge, charts, info] = split_v(
        area,
        [
            Constraint::Length(1),
            Constraint::Min(6),
            Constraint::Length(4),
        ],
    );
    let total = app.args.steps.max(1);
    let done = app.steps.last().map_or(0, |s| s.step);
    let spent: f64 = app.steps.iter().map(|s| s.seconds).sum();
    let eta = if done > 0 {
        spent / done as f64 * (total.saturating_sub(done)) as f64
    } else {
        0.0
    };
    Gauge::default()
        .gauge_style(Style::new().fg(ENC))
        .ratio((done as f64 / total as f64).clamp(0.0, 1.0))
        .label(format!("step {done}/{total}  ETA {}", fmt_secs(eta)))
        .render(gauge, buf);
    let loss = [0, 1, 2].map(|i| series(&app.steps, |s| s.loss[i]));
    let acc = [0, 1, 2].map(|i| series(&app.steps, |s| s.acc[i]));
    let [left, right] = split_h(
        charts,
        [Constraint::Percentage(50), Constraint::Percentage(50)],
    );
    chart("validation loss", &loss, total as f64).render(left, buf);
    chart("validation accuracy", &acc, total as f64).render(right, buf);
    let lines = match app.steps.last() {
        None => vec![Line::from(format!("phase: {}", app.phase))],
        Some(s) => vec![
            Line::from(vec![
                Span::raw(format!("step {} ", s.step)),
                Span::styled(format!("encrypted {:.3}", s.acc[0]), Style::new().fg(ENC)),
                Span::raw(" "),
                Span::styled(format!("mirror {:.3}", s.acc[1]), Style::new().fg(MIR)),
                Span::raw(" "),
                Span::styled(format!("exact {:.3}", s.acc[2]), Style::new().fg(EXA)),
                Span::raw(format!("  |w_enc − w_mir| {:.1e}", s.max_diff)),
            ]),
            Line::from(format!(
                "ops: {} mult  {} cmult  {} rot  {} relin  {} refresh",
                s.ops.mult, s.ops.cmult, s.ops.rot, s.ops.relin, s.ops.refresh
            )),
            Line::from(format!(
                "time {:.2} s: mult {:.2} · rot {:.2} · refresh {:.2} · other {:.2}",
                s.seconds, s.time.mult, s.time.rot, s.time.refresh, s.time.other
            )),
        ],
    };
    Paragraph::new(lines)
        .block(Block::default().borders(Borders::TOP).title("current step"))
        .render(info, buf);
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn render_results(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(s) = &app.summary else {
        Paragraph::new("No results yet: start a run (s) and let it finish.")
            .block(block("Results"))
            .render(area, buf);
        return;
    };
    let [table, bottom] = split_v(area, [Constraint::Length(6), Constraint::Min(4)]);
    let rows = ["encrypted", "mirror", "exact"]
        .iter()
        .zip(&s.test)
        .map(|(n, m)| {
            Row::new(vec![
                Cell::from(*n),
                Cell::from(format!("{:.2} %", m.accuracy * 100.0)),
                Cell::from(format!("{:.4}", m.loss)),
            ])
        });
    Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(12),
        ],
    )
    .header(Row::new(vec!["model", "test acc", "test loss"]).bold())
    .block(block(&format!(
        "Test ({} samples) after {} steps, {:.2} s/step",
        s.test[0].samples, s.steps, s.seconds_per_step
    )))
    .render(table, buf);
    let [conf, per] = split_h(bottom, [Constraint::Min(30), Constraint::Length(26)]);
    let m = &s.test[0];
    let c = m.confusion.len();
    let cw = 4u16;
    let mut crows: Vec<Row> = Vec::with_capacity(c);
    for (k, r) in m.confusion.iter().enumerate() {
        let mut cells = vec![Cell::from(format!("{k:>2}"))];
        cells.extend(r.iter().enumerate().map(|(j, v)| {
            let cell = Cell::from(format!("{v:>3}"));
            if j == k { cell.bold() } else { cell }
        }));
        crows.push(Row::new(cells));
    }
    let mut widths = vec![Constraint::Length(3)];
    widths.extend(std::iter::repeat_n(Constraint::Length(cw - 1), c));
    let header = Row::new(
        std::iter::once(Cell::from("t\\p"))
            .chain((0..c).map(|j| Cell::from(format!("{j:>3}"))))
            .collect::<Vec<_>>(),
    )
    .dim();
    Table::new(crows, widths)
        .header(header)
        .column_spacing(1)
        .block(block("Confusion (encrypted)"))
        .render(conf, buf);
    let prow = m.per_class.iter().enumerate().map(|(k, a)| {
        let name: String = s
            .class_names
            .get(k)
            .map_or(String::new(), |n| n.chars().take(12).collect());
        Row::new(vec![
            Cell::from(format!("{k:>2} {name}")),
            Cell::from(format!("{:>5.1}%", a * 100.0)),
        ])
    });
    Table::new(prow, [Constraint::Length(16), Constraint::Length(7)])
        .block(block("Per class"))
        .render(per, buf);
}

fn render_log(app: &App, area: Rect, buf: &mut Buffer) {
    let h = area.height.saturating_sub(2) as usize;
    let start = app.log.len().saturating_sub(h);
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(start)
        .map(|l| Line::from(l.as_str()))
        .collect();
    Paragraph::new(lines).block(block("Log")).render(area, buf);
}

/// Restores the terminal (raw mode off, main screen back).
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

fn spawn_worker(args: demo::Args, control: Control, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let txc = tx.clone();
        let mut emit = move |e: Event| {
            let _ = txc.send(e);
        };
        if let Err(e) = demo::run(&args, &control, &mut emit) {
            let _ = tx.send(Event::Failed(format!("{e:#}")));
        }
    });
}

/// Runs the app on the terminal until `q`.
pub fn run(args: &demo::Args) -> Result<()> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        hook(info);
    }));
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen)?;
    let backend = ratatui::backend::CrosstermBackend::new(io::stdout());
    let mut terminal = match ratatui::Terminal::new(backend) {
        Ok(t) => t,
        Err(e) => {
            restore();
            return Err(e.into());
        }
    };
    let result = event_loop(&mut terminal, args.clone());
    restore();
    result
}

fn event_loop<B: ratatui::backend::Backend>(
    terminal: &mut ratatui::Terminal<B>,
    args: demo::Args,
) -> Result<()> {
    let mut app = App::new(args);
    let mut control = Control::default();
    let mut rx: Option<Receiver<Event>> = None;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut dirty = true;
    let mut previewed: Option<String> = None;
    while !app.quit {
        // Idle: show the selected dataset before a run starts (once per selection).
        if app.data.is_none()
            && !app.running()
            && previewed.as_deref() != Some(app.args.dataset.as_str())
        {
            previewed = Some(app.args.dataset.clone());
            match demo::preview(&app.args.dataset) {
                Ok(d) => app.data = Some(d),
                Err(e) => app.log.push(format!("{e:#}")),
            }
            dirty = true;
        }
        if let Some(r) = &rx {
            while let Ok(e) = r.try_recv() {
                app.apply(e);
                dirty = true;
            }
        }
        if dirty || last_draw.elapsed() > Duration::from_millis(500) {
            terminal.draw(|f| f.render_widget(&app, f.area()))?;
            last_draw = Instant::now();
            dirty = false;
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                TermEvent::Key(k) if k.kind == KeyEventKind::Press => {
                    dirty = true;
                    match app.handle_key(k.code) {
                        Action::Start => {
                            control = Control::default();
                            let (tx, r) = channel();
                            rx = Some(r);
                            spawn_worker(app.args.clone(), control.clone(), tx);
                        }
                        Action::Pause => control.pause(true),
                        Action::Resume => control.pause(false),
                        Action::Stop | Action::Quit => control.stop(),
                        Action::None => {}
                    }
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::hospital::Metrics;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use trainer_core::backend::OpCounts;

    fn metrics(acc: f64) -> Metrics {
        let c = 8;
        let mut confusion = vec![vec![1u64; c]; c];
        for (k, row) in confusion.iter_mut().enumerate() {
            row[k] = 90;
        }
        Metrics {
            accuracy: acc,
            loss: 0.9,
            per_class: vec![acc; c],
            confusion,
            samples: 1024,
        }
    }

    fn names() -> Vec<String> {
        [
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ]
        .map(String::from)
        .to_vec()
    }

    /// An app in the middle of a run (3 of 5 steps done), or finished.
    fn app(finished: bool) -> App {
        let mut a = App::new(demo::Args {
            steps: 5,
            ..demo::Args::default()
        });
        assert_eq!(a.handle_key(KeyCode::Char('s')), Action::Start);
        a.apply(Event::Phase("data"));
        a.apply(Event::Data(DataInfo {
            dataset: "blood".into(),
            class_names: names(),
            histogram: vec![10, 30, 15, 28, 12, 14, 33, 22],
            train: 164,
            val: 512,
            test: 1024,
            features: 192,
        }));
        a.apply(Event::Keys(KeyInfo {
            preset: "n14_train".into(),
            log_n: 14,
            levels: 7,
            log_qp: 412.0,
            security: "128-bit".into(),
            rotation_keys: 23,
            eval_key_bytes: 156 << 20,
            ciphertext_bytes: 400 << 10,
            rows_per_chunk: 32,
            chunks: 6,
            keygen_s: 1.4,
            encrypt_s: 0.1,
        }));
        a.apply(Event::Phase("training"));
        for step in 1..=3 {
            let v = 0.3 + 0.1 * step as f64;
            a.apply(Event::Step(Box::new(StepInfo {
                step,
                total: 5,
                epoch: 0,
                loss: [2.0 - v, 2.0 - v, 2.0 - v],
                acc: [v, v, v + 0.01],
                ops: OpCounts {
                    mult: 89,
                    cmult: 40,
                    rot: 82,
                    relin: 60,
                    add: 100,
                    refresh: 42,
                    conj: 0,
                },
                time: demo::TimeSplit {
                    mult: 1.3,
                    rot: 1.0,
                    refresh: 0.6,
                    other: 0.1,
                },
                seconds: 3.0,
                max_diff: 2e-7,
            })));
        }
        if finished {
            a.apply(Event::Done(Box::new(Summary {
                dataset: "blood".into(),
                preset: "n14_train".into(),
                steps: 5,
                seconds_per_step: 3.0,
                refresh_mode: "hospital".into(),
                test: [metrics(0.61), metrics(0.61), metrics(0.62)],
                class_names: names(),
                stopped_early: false,
            })));
        }
        a
    }

    fn render(app: &App, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| f.render_widget(app, f.area())).unwrap();
        let buf = t.backend().buffer().clone();
        let lines: Vec<String> = (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect();
        // `BLINDTUNER_DUMP=1 cargo test -p tui app::tests -- --nocapture` prints every screen
        // (the README's capture comes from there).
        if std::env::var_os("BLINDTUNER_DUMP").is_some() {
            eprintln!("{}", lines.join("\n"));
        }
        lines
    }

    fn has(lines: &[String], s: &str) -> bool {
        lines.iter().any(|l| l.contains(s))
    }

    const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

    #[test]
    fn data_screen_shows_dataset_splits_and_histogram() {
        let mut a = app(false);
        a.screen = Screen::Data;
        for (w, h) in SIZES {
            let l = render(&a, w, h);
            assert!(has(&l, "blood: 8 classes, 192 features"), "{w}x{h}: {l:#?}");
            assert!(has(&l, "train 164 (encrypted)"), "{l:#?}");
            assert!(has(&l, "Training samples per class"));
            assert!(has(&l, "33"), "bar values shown: {l:#?}");
            assert!(has(&l, "s start") || has(&l, "p pause"), "help bar");
        }
    }

    #[test]
    fn the_idle_data_screen_previews_the_whole_fixture() {
        let mut a = App::new(demo::Args::default());
        a.data = Some(demo::preview("organa").unwrap());
        let d = a.data.as_ref().unwrap();
        assert_eq!((d.train, d.val, d.test, d.features), (2048, 512, 1024, 192));
        assert_eq!(d.histogram.len(), 11);
        assert_eq!(d.histogram.iter().sum::<usize>(), 2048);
        let l = render(&a, 80, 24);
        assert!(has(&l, "organa: 11 classes"), "{l:#?}");
        assert!(has(&l, "s start"));
        assert!(demo::preview("cifar").is_err());
    }

    #[test]
    fn keys_screen_shows_parameters_and_sizes() {
        let mut a = app(false);
        a.screen = Screen::Keys;
        for (w, h) in SIZES {
            let l = render(&a, w, h);
            assert!(has(&l, "n14_train (128-bit)"), "{l:#?}");
            assert!(has(&l, "N = 2^14  (8192 slots)"));
            assert!(has(&l, "log QP 412"));
            assert!(has(&l, "23 rotations, 156.0 MiB"));
        }
    }

    #[test]
    fn training_screen_shows_gauge_charts_ops_and_time_split() {
        let mut a = app(false);
        a.screen = Screen::Training;
        for (w, h) in SIZES {
            let l = render(&a, w, h);
            assert!(has(&l, "step 3/5"), "{w}x{h}: {l:#?}");
            assert!(has(&l, "ETA 0:06"), "ETA from 3 s per step: {l:#?}");
            assert!(has(&l, "validation loss"));
            // The legends inside both charts.
            let legends: usize = l
                .iter()
                .map(|r| {
                    ["│encrypted", "│mirror", "│exact"]
                        .iter()
                        .map(|n| r.matches(n).count())
                        .sum::<usize>()
                })
                .sum();
            assert_eq!(legends, 6, "legends: {}", l.join("\n"));
            assert!(has(&l, "validation accuracy"));
            assert!(
                has(&l, "encrypted") && has(&l, "mirror") && has(&l, "exact"),
                "{w}x{h}: {}",
                l.join("\n")
            );
            assert!(has(&l, "89 mult"), "{l:#?}");
            assert!(has(&l, "42 refresh"));
            assert!(has(&l, "refresh 0.60"), "{l:#?}");
            assert!(has(&l, "running: training"));
        }
    }

    #[test]
    fn results_screen_shows_accuracy_table_confusion_and_per_class() {
        let a = app(true);
        assert_eq!(a.screen, Screen::Results, "the app moves to the results");
        for (w, h) in SIZES {
            let l = render(&a, w, h);
            assert!(has(&l, "61.00 %"), "{w}x{h}: {l:#?}");
            assert!(has(&l, "62.00 %"));
            assert!(has(&l, "Confusion (encrypted)"));
            assert!(has(&l, " 90"), "diagonal of the confusion matrix");
            assert!(has(&l, "Per class"));
            assert!(has(&l, "basophil"));
            assert!(has(&l, "finished"));
        }
    }

    #[test]
    fn log_screen_shows_the_latest_lines_and_help_overlays() {
        let mut a = app(true);
        a.screen = Screen::Log;
        for (w, h) in SIZES {
            let l = render(&a, w, h);
            assert!(has(&l, "finished: test accuracy"), "{l:#?}");
            assert!(has(&l, "step 3: val acc"));
        }
        a.handle_key(KeyCode::Char('?'));
        let l = render(&a, 80, 24);
        assert!(has(&l, "pause / resume"));
        a.handle_key(KeyCode::Char('?'));
        assert!(!has(&render(&a, 80, 24), "pause / resume"));
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let a = app(true);
        for s in Screen::ALL {
            let mut b = app(true);
            b.screen = s;
            for (w, h) in [(20, 5), (1, 1), (80, 3)] {
                let _ = render(&b, w, h);
            }
        }
        let _ = render(&a, 0, 0);
    }

    #[test]
    fn keys_drive_the_run_state_machine() {
        let mut a = App::new(demo::Args::default());
        assert_eq!(a.state, RunState::Idle);
        // Pause, stop do nothing while idle; d switches the dataset.
        assert_eq!(a.handle_key(KeyCode::Char('p')), Action::None);
        assert_eq!(a.handle_key(KeyCode::Char('x')), Action::None);
        assert_eq!(a.handle_key(KeyCode::Char('d')), Action::None);
        assert_eq!(a.args.dataset, "organa");
        a.handle_key(KeyCode::Char('d'));
        a.handle_key(KeyCode::Char('d'));
        assert_eq!(a.args.dataset, "blood");
        // Start.
        assert_eq!(a.handle_key(KeyCode::Char('s')), Action::Start);
        assert_eq!(a.state, RunState::Running);
        assert_eq!(a.screen, Screen::Training);
        // No second start, no dataset switch while running.
        assert_eq!(a.handle_key(KeyCode::Char('s')), Action::None);
        assert_eq!(a.handle_key(KeyCode::Char('d')), Action::None);
        assert_eq!(a.args.dataset, "blood");
        // Pause / resume.
        assert_eq!(a.handle_key(KeyCode::Char('p')), Action::Pause);
        assert_eq!(a.state, RunState::Paused);
        assert_eq!(a.handle_key(KeyCode::Char(' ')), Action::Resume);
        assert_eq!(a.state, RunState::Running);
        // Stop, then the worker reports the end.
        assert_eq!(a.handle_key(KeyCode::Char('x')), Action::Stop);
        assert_eq!(a.state, RunState::Stopping);
        a.apply(Event::Failed("stopped".into()));
        assert!(matches!(a.state, RunState::Failed(_)));
        // Idle again: a new start is possible.
        assert_eq!(a.handle_key(KeyCode::Char('s')), Action::Start);
        // Screens.
        a.screen = Screen::Data;
        a.handle_key(KeyCode::Tab);
        assert_eq!(a.screen, Screen::Keys);
        a.handle_key(KeyCode::Left);
        a.handle_key(KeyCode::Left);
        assert_eq!(a.screen, Screen::Log);
        a.handle_key(KeyCode::Char('4'));
        assert_eq!(a.screen, Screen::Results);
        // Quit.
        assert_eq!(a.handle_key(KeyCode::Char('q')), Action::Quit);
        assert!(a.quit);
    }

    #[test]
    fn control_pauses_resumes_and_stops() {
        let c = Control::default();
        assert!(!c.paused() && !c.stopped());
        c.pause(true);
        assert!(c.paused());
        c.pause(false);
        assert!(!c.paused());
        c.pause(true);
        c.stop();
        assert!(c.stopped() && !c.paused());
        c.pause(false);
        assert!(c.stopped(), "a stop is final");
    }
}
