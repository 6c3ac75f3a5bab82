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
PATHS_FOUND_MIN = 0.99    # default samples_per_src finds >= 99% of the 1e7 paths

# Generic precision classes (what a value went through decides its tolerance).
FLOAT64_ABS = 1e-12       # closed forms evaluated in float64 on O(1..100) values
FLOAT32_ABS = 1e-6        # float32 values of magnitude <= ~10 (positions [m], rotations)
FLOAT32_REL = 1e-6        # complex64 gains, float32 areas: a few float32 roundings
ANGLE_FLOAT32_ABS = 1e-5  # Sionna's float32 angles [rad] vs geometry
SIONNA_VERTEX_M = 1e-5  # mesh vertices read back from Sionna (float32, tens of metres)
MESH_IO_ABS_M = 1e-9      # coordinates through mesh files (exactly representable test values)
NOISE_SIGMAS = 6.0        # statistical checks: bound = NOISE_SIGMAS / sqrt(samples)
CIR_TRUNCATION_REL = 0.05 # CIR vs CFR energy: finite sinc taps (Parseval up to truncation)

# Estimators.
FIM_NUMERIC_REL = 1e-3    # analytic FIM vs finite-difference FIM (the criterion)
EFFICIENCY_DB1 = 1.12     # "within 1 dB of the bound": RMSE <= 1.12 x bound
MC_SIGMAS = 3.0           # Monte-Carlo RMSE margin: MC_SIGMAS / sqrt(2 N) relative (chi²)


def rmse_margin(num_trials: int) -> float:
    """Relative 3-sigma spread of an RMSE estimated from ``num_trials`` trials.

    For an efficient estimator the squared error is (at most) chi²-like with relative
    standard deviation sqrt(2/N) on the MSE, i.e. 1/sqrt(2N) on the RMSE.
    """
    return 1.0 + MC_SIGMAS / (2.0 * num_trials) ** 0.5
ANM_SOLVER_REL = 1e-3     # ADMM vs the SDP (SCS, eps 1e-7) on one denoising problem (issue)
LOCMAN_CRLB_FACTOR = 1.26 # "within 2 dB of the CRLB": position RMSE <= 10^(2/20) x PEB
NOISELESS_PARAMETER_ABS = 1e-6  # geometry recovered by the WLS from exact channel parameters
ANM_HIGH_SNR_ABS = 0.02  # (c τ [m], ω [rad]) at 40 dB: measured <= 4e-3; a mispaired or
                          # missed path is off by O(1)

# LOCMAN on the twin (tests/twin/test_twin_estimators.py): LOS + one wall, 30 dB SNR,
# Nt = 8, Nr = 4, K = 9. Measured over 10 noise seeds x 4 positions: UE error <= 4.6 mm
# (PEB ~2 mm), yaw error <= 0.041 deg (bound ~0.02 deg), scatterer error <= 8 mm at the
# test's seed; ~4-6x margin on the worst case.
LOCMAN_TWIN_UE_M = 0.02
LOCMAN_TWIN_YAW_RAD = 0.0035  # 0.2 deg
LOCMAN_TWIN_SCATTERER_M = 0.05
# DCS-SOMP's grid (4x oversampled, Nr = 4: 0.39 rad steps of ω_R) biases it: 0.26 m
# worst case over 10 seeds, the same at every seed (deterministic grid bias); 2x margin.
DCS_SOMP_TWIN_UE_M = 0.5
