"""Pythia 8 settings for each named process, and the technical settings every run shares."""

from __future__ import annotations

#: Settings shared by every process (quiet output; seeds are added per worker).
COMMON: tuple[str, ...] = (
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Beams:idA = 2212",
    "Beams:idB = 2212",
)

#: Hidden-valley "semi-visible jet" model (after the CMS SVJ / Cohen-Lisanti-Lou choices):
#: Z_v (1.5 TeV) -> q_v q_v, dark QCD SU(3) with 2 dark flavours, Lambda_v = 10 GeV.
#: Flavour-diagonal dark mesons (20 GeV) decay back to SM quarks; off-diagonal ones (9.99 GeV)
#: are stable and invisible, so jets lose part of their energy (r_inv about 0.3-0.5).
#: The Z_v line shape is cut to 1.2-1.8 TeV: Pythia's default mMin (100 GeV) let the parton
#: luminosity pull 28% of the events far off shell, down to 100 GeV.
DARKSHOWER: tuple[str, ...] = (
    "HiddenValley:ffbar2Zv = on",
    "4900023:m0 = 1500",
    "4900023:mWidth = 15",
    "4900023:mMin = 1200",
    "4900023:mMax = 1800",
    "4900023:onMode = off",
    "4900023:onIfAny = 4900101",
    "HiddenValley:Ngauge = 3",
    "HiddenValley:nFlav = 2",
    "HiddenValley:spinFv = 0",
    "HiddenValley:FSR = on",
    "HiddenValley:fragment = on",
    "HiddenValley:alphaOrder = 1",
    "HiddenValley:Lambda = 10",
    "HiddenValley:pTminFSR = 11",
    "HiddenValley:probVector = 0.75",
    "4900101:m0 = 10",
    "4900111:m0 = 20",
    "4900113:m0 = 20",
    "4900211:m0 = 9.99",
    "4900213:m0 = 9.99",
    "4900111:oneChannel = 1 1.0 91 -5 5",
    "4900113:oneChannel = 1 0.2 91 -1 1",
    "4900113:addChannel = 1 0.2 91 -2 2",
    "4900113:addChannel = 1 0.2 91 -3 3",
    "4900113:addChannel = 1 0.2 91 -4 4",
    "4900113:addChannel = 1 0.2 91 -5 5",
)

#: Z' (2 TeV, SM-like couplings, pure Z' without gamma*/Z interference) decaying only to top pairs.
ZPRIME: tuple[str, ...] = (
    "NewGaugeBoson:ffbar2gmZZprime = on",
    "Zprime:gmZmode = 3",
    "32:m0 = 2000",
    "32:onMode = off",
    "32:onIfAny = 6",
    "PhaseSpace:mHatMin = 1000",
)

#: SM ttH (gg, qqbar -> t tbar H; LO, Pythia's slow 2 -> 3 phase space), H (125 GeV) -> b bbar only,
#: tops decay in all modes: one of the signals on which CMS quotes the AXOL1TL trigger.
TTH: tuple[str, ...] = (
    "HiggsSM:gg2Httbar = on",
    "HiggsSM:qqbar2Httbar = on",
    "25:onMode = off",
    "25:onIfMatch = 5 -5",
)

#: NOT SM HH (Pythia 8 has no gg -> HH): a resonant spin-0 X -> h h -> 4b, like the radion benchmark
#: of the CMS X -> HH searches. X is the second 2HDM scalar H2 = 35 (Higgs:useBSM, which also switches
#: the SM Higgs processes off), made by gg fusion, at 1 TeV with a forced narrow width (10 GeV) and its
#: line shape cut to 0.9-1.1 TeV, decaying only to h h; h = H1 = 25 (125 GeV, SM-like default couplings)
#: decays only to b bbar. The forced width rescales the branching ratios, so Pythia's cross section is
#: meaningless here.
HH4B: tuple[str, ...] = (
    "Higgs:useBSM = on",
    "HiggsBSM:gg2H2 = on",
    "35:m0 = 1000",
    "35:mWidth = 10",
    "35:doForceWidth = on",
    "35:mMin = 900",
    "35:mMax = 1100",
    "35:onMode = off",
    "35:onIfMatch = 25 25",
    "25:onMode = off",
    "25:onIfMatch = 5 -5",
)

#: Low-mass Z' (500 GeV, SM-like couplings, width about 15 GeV, pure Z') -> q qbar (d, u, s, c, b; no top):
#: a dijet resonance whose HT (median about 400 GeV in the toy detector) sits right at the L1 HT thresholds
#: of a few hundred GeV, where QCD is orders of magnitude larger, so HT alone cannot single it out.
#: mHat is cut to 400-600 GeV (without the cut 5% of the events lie outside, some down to 35 GeV).
ZPRIME500: tuple[str, ...] = (
    "NewGaugeBoson:ffbar2gmZZprime = on",
    "Zprime:gmZmode = 3",
    "32:m0 = 500",
    "32:onMode = off",
    "32:onIfAny = 1 2 3 4 5",
    "PhaseSpace:mHatMin = 400",
    "PhaseSpace:mHatMax = 600",
)

PROCESSES: dict[str, tuple[str, ...]] = {
    "qcd": ("HardQCD:all = on",),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    "zprime": ZPRIME,
    "darkshower": DARKSHOWER,
    "tth": TTH,
    "hh4b": HH4B,
    "zprime500": ZPRIME500,
    "custom": (),  # nothing switched on: give the process with --pythia
}

DESCRIPTIONS: dict[str, str] = {
    "qcd": "QCD multijet (HardQCD:all), pT-hat > --pthat-min (default 100 GeV): the background",
    "ttbar": "SM top pair production (gg, qqbar -> ttbar), all decays",
    "zprime": "Z' (2 TeV) -> ttbar, boosted top jets",
    "darkshower": "hidden valley Z_v (1.5 TeV) -> dark quarks, dark shower, semi-visible jets",
    "tth": "SM ttH, H -> b bbar, tops in all decay modes",
    "hh4b": "resonant X(1 TeV) -> hh -> 4b (spin-0 H2 of Higgs:useBSM, narrow), not SM HH",
    "zprime500": "low-mass Z' (500 GeV) -> q qbar (no top): dijet resonance at the L1 HT thresholds",
    "custom": "nothing preset: switch a process on with --pythia",
}

#: Minimum-bias events used for pileup overlay.
MINBIAS: tuple[str, ...] = ("SoftQCD:nonDiffractive = on",)


def process_settings(process: str, ecm_gev: float, pthat_min_gev: float, extra: list[str]) -> list[str]:
    """All Pythia strings for ``process`` (without seeds), user's ``extra`` last so they override."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    settings = [*COMMON, f"Beams:eCM = {ecm_gev:g}", *PROCESSES[process]]
    if process == "qcd":
        settings.append(f"PhaseSpace:pTHatMin = {pthat_min_gev:g}")
    return settings + list(extra)


def minbias_settings(ecm_gev: float) -> list[str]:
    """Pythia strings for the pileup (minimum-bias) generator."""
    return [*COMMON, f"Beams:eCM = {ecm_gev:g}", *MINBIAS]


def seed_settings(seed: int) -> list[str]:
    """Pythia strings that fix the random seed (Pythia accepts 1..900000000)."""
    return ["Random:setSeed = on", f"Random:seed = {seed}"]
