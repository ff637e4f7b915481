"""The energy report as a figure: spikes per neuron and firing rate per layer, and the energy split."""

from __future__ import annotations

from pathlib import Path


def plot_report(report, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neuron_rows = [r for r in report.layers if r["kind"] == "neurons"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 3, 1.4]})
    names = [r["name"] or "(model)" for r in neuron_rows]
    x = range(len(neuron_rows))
    axes[0].bar(x, [r["spikes_per_neuron"] for r in neuron_rows], color="#3b6ea5")
    axes[0].set_title("spikes per neuron per sample")
    axes[1].bar(x, [r["firing_rate"] for r in neuron_rows], color="#d07c2e")
    axes[1].set_title("firing rate per time step")
    for ax in axes[:2]:
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_xlabel("neuron layer (input to output)")
        ax.grid(axis="y", alpha=0.3)
    t, e = report.total, report.energy
    ac_uj, mac_uj, ann_uj = t["sops"] * e.e_ac_pj / 1e6, t["macs"] * e.e_mac_pj / 1e6, t["ann_energy_pj"] / 1e6
    axes[2].bar(["SNN"], [ac_uj], color="#3b6ea5", label=f"ACs (SOPs x {e.e_ac_pj} pJ)")
    axes[2].bar(["SNN"], [mac_uj], bottom=[ac_uj], color="#b5473a", label=f"MACs x {e.e_mac_pj} pJ")
    axes[2].bar(["ANN"], [ann_uj], color="#7f7f7f", label="ANN MACs")
    axes[2].set_ylabel("energy per sample (uJ)")
    ratio = t["ann_over_snn"]
    axes[2].set_title(f"energy: ANN / SNN = {ratio:.2f}x" if ratio else "energy")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{t['spikes_per_neuron'] or 0:.3f} spikes per neuron per sample, {report.samples} samples "
                 f"({e.name})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
