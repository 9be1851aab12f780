"""Adversarial attacks (course notes, "Security to Adversarial Attack"): `dlc attack`.

    objective.py  what the attacker pushes up: cross-entropy on probabilities or a margin on logits
    steps.py      one step, the projection onto the eps-ball, the valid range (numpy, shared)
    targets.py    what is attacked, seen only through its outputs: an artifact, or a module as an oracle;
                  every example it scores is a counted query (numpy; no torch)
    blackbox.py   gradients estimated by finite differences: every feature, random groups, PCA directions
    whitebox.py   gradients through a PyTorch module, or a mean of several (transfer from substitutes)
    loop.py       the attack loop itself, one method for every gradient source
    report.py     the figures, report.json and the PNG grid

A black-box attack on an artifact imports numpy, TVM's runtime and this package only: no torch,
no compiler (a test runs it with torch blocked).
"""
