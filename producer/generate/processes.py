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

PROCESSES: dict[str, tuple[str, ...]] = {
    "qcd": ("HardQCD:all = on",),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    "zprime": ZPRIME,
    "darkshower": DARKSHOWER,
    "custom": (),  # nothing switched on: give the process with --pythia
}

DESCRIPTIONS: dict[str, str] = {
    "qcd": "QCD multijet (HardQCD:all), pT-hat > --pthat-min (default 100 GeV): the background",
    "ttbar": "SM top pair production (gg, qqbar -> ttbar), all decays",
    "zprime": "Z' (2 TeV) -> ttbar, boosted top jets",
    "darkshower": "hidden valley Z_v (1.5 TeV) -> dark quarks, dark shower, semi-visible jets",
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
