"""Every numerical tolerance of the test suite, in one place, with its reason.

Sionna RT computes in float32: positions of tens of metres carry ~1e-5 m of rounding,
so geometric checks hold to well under a millimetre; gains and Doppler hold to
float32 relative precision times a few operations.
"""

SPEED_OF_LIGHT = 299_792_458.0  # [m/s], the value Sionna RT uses

FRIIS_REL = 1e-4          # |a|² vs (λ/4πd)², relative
DELAY_ABS_S = 1e-12       # τ vs d/c [s]
GEOMETRY_ABS_M = 1e-3     # interaction points, virtual anchors, c·τ vs |VA - UE| [m]
DOPPLER_REL = 1e-6        # LOS Doppler vs v·û/λ, relative
STEERING_REL = 1e-3       # twin LOS CFR vs the estimators' forward model (Frobenius)
FLOAT64_REL = 1e-12       # numpy-vs-numpy identities computed in float64
SIONNA_CFR_REL = 1e-5     # twin CFR (float64 sum of float32 gains) vs Sionna's own cfr()
PATHS_FOUND_MIN = 0.99    # default samples_per_src finds >= 99% of the 1e7 paths
