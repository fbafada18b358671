"""Catalogue parameters: SExtractor's name, FITS type code, unit, display format and description.

Generated from the LDAC output of SExtractor 2.25 (TFORM/TUNIT/TDISP) and ``source-extractor -dp``, so
that our catalogues have the same column types, units and formats.  Only parameters this implementation
measures are listed; any other name from ``-dp`` is reported as known but unsupported.
"""

# (name, FITS binary table type code, unit, TDISP, description)
DEFINITIONS = [
    ('NUMBER', 'J', '', 'I10', 'Running object number'),
    ('X_IMAGE', 'E', 'pixel', 'F11.4', 'Object position along x'),
    ('Y_IMAGE', 'E', 'pixel', 'F11.4', 'Object position along y'),
    ('X_WORLD', 'D', 'deg', 'E18.10', 'Barycenter position along world x axis'),
    ('Y_WORLD', 'D', 'deg', 'E18.10', 'Barycenter position along world y axis'),
    ('XWIN_IMAGE', 'D', 'pixel', 'F11.4', 'Windowed position estimate along x'),
    ('YWIN_IMAGE', 'D', 'pixel', 'F11.4', 'Windowed position estimate along y'),
    ('ERRAWIN_IMAGE', 'E', 'pixel', 'F9.5', 'RMS windowed pos error along major axis'),
    ('ERRBWIN_IMAGE', 'E', 'pixel', 'F9.5', 'RMS windowed pos error along minor axis'),
    ('ERRTHETAWIN_IMAGE', 'E', 'deg', 'F6.2', 'Windowed error ellipse pos angle (CCW/x)'),
    ('ALPHA_J2000', 'D', 'deg', 'F11.7', 'Right ascension of barycenter (J2000)'),
    ('DELTA_J2000', 'D', 'deg', 'F11.7', 'Declination of barycenter (J2000)'),
    ('MAG_AUTO', 'E', 'mag', 'F8.4', 'Kron-like elliptical aperture magnitude'),
    ('MAGERR_AUTO', 'E', 'mag', 'F8.4', 'RMS error for AUTO magnitude'),
    ('FLUX_AUTO', 'E', 'count', 'G12.7', 'Flux within a Kron-like elliptical aperture'),
    ('FLUXERR_AUTO', 'E', 'count', 'G12.7', 'RMS error for AUTO flux'),
    ('MAG_ISO', 'E', 'mag', 'F8.4', 'Isophotal magnitude'),
    ('MAGERR_ISO', 'E', 'mag', 'F8.4', 'RMS error for isophotal magnitude'),
    ('FLUX_ISO', 'E', 'count', 'G12.7', 'Isophotal flux'),
    ('FLUXERR_ISO', 'E', 'count', 'G12.7', 'RMS error for isophotal flux'),
    ('FLUX_APER', 'E', 'count', 'G12.7', 'Flux vector within fixed circular aperture(s)'),
    ('FLUXERR_APER', 'E', 'count', 'G12.7', 'RMS error vector for aperture flux(es)'),
    ('MAG_APER', 'E', 'mag', 'F8.4', 'Fixed aperture magnitude vector'),
    ('MAGERR_APER', 'E', 'mag', 'F8.4', 'RMS error vector for fixed aperture mag.'),
    ('MAG_PETRO', 'E', 'mag', 'F8.4', 'Petrosian-like elliptical aperture magnitude'),
    ('MAGERR_PETRO', 'E', 'mag', 'F8.4', 'RMS error for PETROsian magnitude'),
    ('FLUX_PETRO', 'E', 'count', 'G12.7', 'Flux within a Petrosian-like elliptical aperture'),
    ('FLUXERR_PETRO', 'E', 'count', 'G12.7', 'RMS error for PETROsian flux'),
    ('THETA_IMAGE', 'E', 'deg', 'F6.2', 'Position angle (CCW/x)'),
    ('THETA_J2000', 'E', 'deg', 'F6.2', 'Position angle (east of north) (J2000)'),
    ('THETA_WORLD', 'E', 'deg', 'F6.2', 'Position angle (CCW/world-x)'),
    ('A_IMAGE', 'E', 'pixel', 'F9.3', 'Profile RMS along major axis'),
    ('B_IMAGE', 'E', 'pixel', 'F9.3', 'Profile RMS along minor axis'),
    ('A_WORLD', 'E', 'deg', 'G12.7', 'Profile RMS along major axis (world units)'),
    ('B_WORLD', 'E', 'deg', 'G12.7', 'Profile RMS along minor axis (world units)'),
    ('ERRA_IMAGE', 'E', 'pixel', 'F9.5', 'RMS position error along major axis'),
    ('ERRB_IMAGE', 'E', 'pixel', 'F9.5', 'RMS position error along minor axis'),
    ('ERRTHETA_IMAGE', 'E', 'deg', 'F6.2', 'Error ellipse position angle (CCW/x)'),
    ('ERRA_WORLD', 'E', 'deg', 'G12.7', 'World RMS position error along major axis'),
    ('ERRB_WORLD', 'E', 'deg', 'G12.7', 'World RMS position error along minor axis'),
    ('ERRTHETA_WORLD', 'E', 'deg', 'F6.2', 'Error ellipse pos. angle (CCW/world-x)'),
    ('ERRTHETA_J2000', 'E', 'deg', 'F6.2', 'J2000 error ellipse pos. angle (east of north)'),
    ('ISOAREA_IMAGE', 'J', 'pixel**2', 'I9', 'Isophotal area above Analysis threshold'),
    ('ISOAREAF_IMAGE', 'J', 'pixel**2', 'I9', 'Isophotal area (filtered) above Detection threshold'),
    ('THRESHOLD', 'E', 'count', 'G12.7', 'Detection threshold above background'),
    ('MU_THRESHOLD', 'E', 'mag * arcsec**(-2)', 'F8.4', 'Analysis threshold above background'),
    ('BACKGROUND', 'E', 'count', 'G12.7', 'Background at centroid position'),
    ('FLUX_MAX', 'E', 'count', 'G12.7', 'Peak flux above background'),
    ('MU_MAX', 'E', 'mag * arcsec**(-2)', 'F8.4', 'Peak surface brightness above background'),
    ('KRON_RADIUS', 'E', '', 'F5.2', 'Kron apertures in units of A or B'),
    ('PETRO_RADIUS', 'E', '', 'F5.2', 'Petrosian apertures in units of A or B'),
    ('FLUX_RADIUS', 'E', 'pixel', 'F10.3', 'Fraction-of-light radii'),
    ('FLAGS', 'I', '', 'I3', 'Extraction flags'),
    ('CLASS_STAR', 'E', '', 'F6.3', 'S/G classifier output'),
    ('X2_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance along x'),
    ('Y2_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance along y'),
    ('XY_IMAGE', 'D', 'pixel**2', 'E18.10', 'Covariance between x and y'),
    ('SNR_WIN', 'E', '', 'G10.4', 'Gaussian-weighted SNR'),
    ('ELONGATION', 'E', '', 'F8.3', 'A_IMAGE/B_IMAGE'),
    ('ELLIPTICITY', 'E', '', 'F8.3', '1 - B_IMAGE/A_IMAGE'),
    ('FWHM_IMAGE', 'E', 'pixel', 'F8.2', 'FWHM assuming a gaussian core'),
    ('FLAGS_WEIGHT', 'I', '', 'I1', 'Weighted extraction flags'),
    ('FLAGS_WIN', 'I', '', 'I3', 'Flags for WINdowed parameters'),
    ('IMAFLAGS_ISO', 'J', '', 'I9', "FLAG-image flags OR'ed over the iso. profile"),
    ('NIMAFLAGS_ISO', 'J', '', 'I9', 'Number of flagged pixels entering IMAFLAGS_ISO'),
    ('XPEAK_IMAGE', 'J', 'pixel', 'I10', 'x-coordinate of the brightest pixel'),
    ('YPEAK_IMAGE', 'J', 'pixel', 'I10', 'y-coordinate of the brightest pixel'),
    ('XMIN_IMAGE', 'J', 'pixel', 'I10', 'Minimum x-coordinate among detected pixels'),
    ('YMIN_IMAGE', 'J', 'pixel', 'I10', 'Minimum y-coordinate among detected pixels'),
    ('XMAX_IMAGE', 'J', 'pixel', 'I10', 'Maximum x-coordinate among detected pixels'),
    ('YMAX_IMAGE', 'J', 'pixel', 'I10', 'Maximum y-coordinate among detected pixels'),
    ('CXX_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Cxx object ellipse parameter'),
    ('CYY_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Cyy object ellipse parameter'),
    ('CXY_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Cxy object ellipse parameter'),
    ('ERRX2_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance of position along x'),
    ('ERRY2_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance of position along y'),
    ('ERRXY_IMAGE', 'D', 'pixel**2', 'E18.10', 'Covariance of position between x and y'),
    ('X2WIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Windowed variance along x'),
    ('Y2WIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Windowed variance along y'),
    ('XYWIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Windowed covariance between x and y'),
    ('AWIN_IMAGE', 'E', 'pixel', 'F9.3', 'Windowed profile RMS along major axis'),
    ('BWIN_IMAGE', 'E', 'pixel', 'F9.3', 'Windowed profile RMS along minor axis'),
    ('THETAWIN_IMAGE', 'E', 'deg', 'F6.2', 'Windowed position angle (CCW/x)'),
    ('FLUX_WIN', 'E', 'count', 'G12.7', 'Gaussian-weighted flux'),
    ('FLUXERR_WIN', 'E', 'count', 'G12.7', 'RMS error for WIN flux'),
    ('MAG_WIN', 'E', 'mag', 'F8.4', 'Gaussian-weighted magnitude'),
    ('MAGERR_WIN', 'E', 'mag', 'F8.4', 'RMS error for MAG_WIN'),
    ('NITER_WIN', 'I', '', 'I3', 'Number of iterations for WIN centering'),
    ('XWIN_WORLD', 'D', 'deg', 'E18.10', 'Windowed position along world x axis'),
    ('YWIN_WORLD', 'D', 'deg', 'E18.10', 'Windowed position along world y axis'),
    ('ALPHAWIN_J2000', 'D', 'deg', 'F11.7', 'Windowed right ascension (J2000)'),
    ('DELTAWIN_J2000', 'D', 'deg', 'F11.7', 'windowed declination (J2000)'),
    ('FWHM_WORLD', 'E', 'deg', 'G12.7', 'FWHM assuming a gaussian core'),
    ('ISOAREA_WORLD', 'E', 'deg**2', 'G12.7', 'Isophotal area above Analysis threshold'),
    ('EXT_NUMBER', 'I', '', 'I3', 'FITS extension number'),
    ('ISO0', 'J', 'pixel**2', 'I8', 'Isophotal area at level 0'),
    ('ISO7', 'J', 'pixel**2', 'I8', 'Isophotal area at level 7'),
    ('ERRAWIN_WORLD', 'E', 'deg', 'G12.7', 'World RMS windowed pos error along major axis'),
    ('ERRBWIN_WORLD', 'E', 'deg', 'G12.7', 'World RMS windowed pos error along minor axis'),
    ('ERRTHETAWIN_J2000', 'E', 'deg', 'F6.2', 'J2000 windowed error ellipse pos. angle (east of north)'),
    ('ISO1', 'J', 'pixel**2', 'I8', 'Isophotal area at level 1'),
    ('ISO2', 'J', 'pixel**2', 'I8', 'Isophotal area at level 2'),
    ('ISO3', 'J', 'pixel**2', 'I8', 'Isophotal area at level 3'),
    ('ISO4', 'J', 'pixel**2', 'I8', 'Isophotal area at level 4'),
    ('ISO5', 'J', 'pixel**2', 'I8', 'Isophotal area at level 5'),
    ('ISO6', 'J', 'pixel**2', 'I8', 'Isophotal area at level 6'),
    ('ALPHA_SKY', 'D', 'deg', 'F11.7', 'Right ascension of barycenter (native)'),
    ('DELTA_SKY', 'D', 'deg', 'F11.7', 'Declination of barycenter (native)'),
    ('ISOAREAF_WORLD', 'E', 'deg**2', 'G12.7', 'Isophotal area (filtered) above Detection threshold'),
    ('X2_WORLD', 'D', 'deg**2', 'E18.10', 'Variance along X-WORLD (alpha)'),
    ('Y2_WORLD', 'D', 'deg**2', 'E18.10', 'Variance along Y-WORLD (delta)'),
    ('XY_WORLD', 'D', 'deg**2', 'E18.10', 'Covariance between X-WORLD and Y-WORLD'),
    ('CXX_WORLD', 'E', 'deg**(-2)', 'E15.7', 'Cxx object ellipse parameter (WORLD units)'),
    ('CYY_WORLD', 'E', 'deg**(-2)', 'E15.7', 'Cyy object ellipse parameter (WORLD units)'),
    ('CXY_WORLD', 'E', 'deg**(-2)', 'E15.7', 'Cxy object ellipse parameter (WORLD units)'),
    ('ERRX2WIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance of windowed pos along x'),
    ('ERRY2WIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Variance of windowed pos along y'),
    ('ERRXYWIN_IMAGE', 'D', 'pixel**2', 'E18.10', 'Covariance of windowed pos between x and y'),
    ('THETAWIN_J2000', 'E', 'deg', 'F6.2', 'Windowed position angle (east of north) (J2000)'),
    ('AWIN_WORLD', 'E', 'deg', 'G12.7', 'Windowed profile RMS along major axis (world units)'),
    ('BWIN_WORLD', 'E', 'deg', 'G12.7', 'Windowed profile RMS along minor axis (world units)'),
    ('THETAWIN_WORLD', 'E', 'deg', 'F6.2', 'Windowed position angle (CCW/world-x)'),
    ('ERRTHETAWIN_WORLD', 'E', 'deg', 'F6.2', 'Windowed error ellipse pos. angle (CCW/world-x)'),
    ('XPEAK_WORLD', 'D', 'deg', 'E18.10', 'World-x coordinate of the brightest pixel'),
    ('YPEAK_WORLD', 'D', 'deg', 'E18.10', 'World-y coordinate of the brightest pixel'),
    ('ALPHAPEAK_J2000', 'D', 'deg', 'F11.7', 'Right ascension of brightest pix (J2000)'),
    ('DELTAPEAK_J2000', 'D', 'deg', 'F11.7', 'Declination of brightest pix (J2000)'),
    ('THETA_SKY', 'E', 'deg', 'F6.2', 'Position angle (east of north) (native)'),
    ('ERRTHETA_SKY', 'E', 'deg', 'F6.2', 'Native error ellipse pos. angle (east of north)'),
    ('VIGNET', 'E', 'count', 'G12.7', 'Pixel data around detection'),
    ('X_IMAGE_DBL', 'D', 'pixel', 'F11.4', 'Object position along x (double precision)'),
    ('Y_IMAGE_DBL', 'D', 'pixel', 'F11.4', 'Object position along y (double precision)'),
    ('POLAR_IMAGE', 'E', '', 'F7.5', '(A_IMAGE^2 - B_IMAGE^2)/(A_IMAGE^2 + B_IMAGE^2)'),
    ('POLARWIN_IMAGE', 'E', '', 'F7.5', '(AWIN^2 - BWIN^2)/(AWIN^2 + BWIN^2)'),
    ('CXXWIN_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Windowed Cxx object ellipse parameter'),
    ('CYYWIN_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Windowed Cyy object ellipse parameter'),
    ('CXYWIN_IMAGE', 'E', 'pixel**(-2)', 'E15.7', 'Windowed Cxy object ellipse parameter'),
    ('ERRCXX_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cxx error ellipse parameter'),
    ('ERRCYY_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cyy error ellipse parameter'),
    ('ERRCXY_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cxy error ellipse parameter'),
    ('ERRCXXWIN_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cxx windowed error ellipse parameter'),
    ('ERRCYYWIN_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cyy windowed error ellipse parameter'),
    ('ERRCXYWIN_IMAGE', 'E', 'pixel**(-2)', 'G12.7', 'Cxy windowed error ellipse parameter'),
    ('NLOWWEIGHT_ISO', 'J', '', 'I9', 'Nb of pixels with low weight over the iso. profile'),
    ('ALPHAWIN_SKY', 'D', 'deg', 'F11.7', 'Windowed right ascension  (native)'),
    ('DELTAWIN_SKY', 'D', 'deg', 'F11.7', 'Windowed declination (native)'),
    ('THETAWIN_SKY', 'E', 'deg', 'F6.2', 'Windowed position angle (east of north) (native)'),
    ('ERRTHETAWIN_SKY', 'E', 'deg', 'F6.2', 'Native windowed error ellipse pos. angle (east of north)'),
    ('FLUX_ISOCOR', 'E', 'count', 'G12.7', 'Corrected isophotal flux'),
    ('FLUXERR_ISOCOR', 'E', 'count', 'G12.7', 'RMS error for corrected isophotal flux'),
    ('MAG_ISOCOR', 'E', 'mag', 'F8.4', 'Corrected isophotal magnitude'),
    ('MAGERR_ISOCOR', 'E', 'mag', 'F8.4', 'RMS error for corrected isophotal magnitude'),
    ('FLUX_BEST', 'E', 'count', 'G12.7', 'Best of FLUX_AUTO and FLUX_ISOCOR'),
    ('FLUXERR_BEST', 'E', 'count', 'G12.7', 'RMS error for BEST flux'),
    ('MAG_BEST', 'E', 'mag', 'F8.4', 'Best of MAG_AUTO and MAG_ISOCOR'),
    ('MAGERR_BEST', 'E', 'mag', 'F8.4', 'RMS error for MAG_BEST'),
]

BY_NAME = {d[0]: d for d in DEFINITIONS}

#: parameters whose vector length comes from the configuration
VECTOR_FROM = {"FLUX_APER": "PHOT_APERTURES", "FLUXERR_APER": "PHOT_APERTURES", "MAG_APER": "PHOT_APERTURES",
               "MAGERR_APER": "PHOT_APERTURES", "FLUX_RADIUS": "PHOT_FLUXFRAC"}
#: 2-D vector parameters (need an explicit size)
VECTOR_2D = {"VIGNET"}

#: every parameter name SExtractor 2.25 knows (``source-extractor -dp``)
ALL_SEXTRACTOR_NAMES = frozenset("""
    NUMBER ID_PARENT EXT_NUMBER FLUX_ISO FLUXERR_ISO MAG_ISO MAGERR_ISO FLUX_ISOCOR FLUXERR_ISOCOR MAG_ISOCOR
    MAGERR_ISOCOR FLUX_APER FLUXERR_APER MAG_APER MAGERR_APER FLUX_AUTO FLUXERR_AUTO MAG_AUTO MAGERR_AUTO
    FLUX_PETRO FLUXERR_PETRO MAG_PETRO MAGERR_PETRO FLUX_BEST FLUXERR_BEST MAG_BEST MAGERR_BEST FLUX_WIN
    FLUXERR_WIN MAG_WIN MAGERR_WIN SNR_WIN FLUX_SOMFIT FLUXERR_SOMFIT MAG_SOMFIT MAGERR_SOMFIT ERROR_SOMFIT
    VECTOR_SOMFIT KRON_RADIUS PETRO_RADIUS BACKGROUND THRESHOLD FLUX_MAX ISOAREA_IMAGE ISOAREAF_IMAGE
    XMIN_IMAGE YMIN_IMAGE XMAX_IMAGE YMAX_IMAGE XPEAK_IMAGE YPEAK_IMAGE XPEAK_FOCAL YPEAK_FOCAL XPEAK_WORLD
    YPEAK_WORLD ALPHAPEAK_SKY DELTAPEAK_SKY ALPHAPEAK_J2000 DELTAPEAK_J2000 ALPHAPEAK_B1950 DELTAPEAK_B1950
    X_IMAGE Y_IMAGE DGEOX_IMAGE DGEOY_IMAGE X_IMAGE_DBL Y_IMAGE_DBL X_FOCAL Y_FOCAL X_WORLD Y_WORLD X_MAMA
    Y_MAMA ALPHA_SKY DELTA_SKY ALPHA_J2000 DELTA_J2000 ALPHA_B1950 DELTA_B1950 X2_IMAGE Y2_IMAGE XY_IMAGE
    X2_WORLD Y2_WORLD XY_WORLD CXX_IMAGE CYY_IMAGE CXY_IMAGE CXX_WORLD CYY_WORLD CXY_WORLD A_IMAGE B_IMAGE
    THETA_IMAGE A_WORLD B_WORLD THETA_WORLD THETA_SKY THETA_J2000 THETA_B1950 ERRX2_IMAGE ERRY2_IMAGE
    ERRXY_IMAGE ERRX2_WORLD ERRY2_WORLD ERRXY_WORLD ERRCXX_IMAGE ERRCYY_IMAGE ERRCXY_IMAGE ERRCXX_WORLD
    ERRCYY_WORLD ERRCXY_WORLD ERRA_IMAGE ERRB_IMAGE ERRTHETA_IMAGE ERRA_WORLD ERRB_WORLD ERRTHETA_WORLD
    ERRTHETA_SKY ERRTHETA_J2000 ERRTHETA_B1950 XWIN_IMAGE YWIN_IMAGE DGEOXWIN_IMAGE DGEOYWIN_IMAGE XWIN_FOCAL
    YWIN_FOCAL XWIN_WORLD YWIN_WORLD ALPHAWIN_SKY DELTAWIN_SKY ALPHAWIN_J2000 DELTAWIN_J2000 ALPHAWIN_B1950
    DELTAWIN_B1950 X2WIN_IMAGE Y2WIN_IMAGE XYWIN_IMAGE X2WIN_WORLD Y2WIN_WORLD XYWIN_WORLD CXXWIN_IMAGE
    CYYWIN_IMAGE CXYWIN_IMAGE CXXWIN_WORLD CYYWIN_WORLD CXYWIN_WORLD AWIN_IMAGE BWIN_IMAGE THETAWIN_IMAGE
    AWIN_WORLD BWIN_WORLD THETAWIN_WORLD THETAWIN_SKY THETAWIN_J2000 THETAWIN_B1950 ERRX2WIN_IMAGE
    ERRY2WIN_IMAGE ERRXYWIN_IMAGE ERRX2WIN_WORLD ERRY2WIN_WORLD ERRXYWIN_WORLD ERRCXXWIN_IMAGE ERRCYYWIN_IMAGE
    ERRCXYWIN_IMAGE ERRCXXWIN_WORLD ERRCYYWIN_WORLD ERRCXYWIN_WORLD ERRAWIN_IMAGE ERRBWIN_IMAGE
    ERRTHETAWIN_IMAGE ERRAWIN_WORLD ERRBWIN_WORLD ERRTHETAWIN_WORLD ERRTHETAWIN_SKY ERRTHETAWIN_J2000
    ERRTHETAWIN_B1950 NITER_WIN MU_THRESHOLD MU_MAX ISOAREA_WORLD ISOAREAF_WORLD ISO0 ISO1 ISO2 ISO3 ISO4 ISO5
    ISO6 ISO7 FLAGS FLAGS_WEIGHT FLAGS_WIN IMAFLAGS_ISO NIMAFLAGS_ISO NLOWWEIGHT_ISO NLOWDWEIGHT_ISO
    FWHM_IMAGE FWHM_WORLD ELONGATION ELLIPTICITY POLAR_IMAGE POLAR_WORLD POLARWIN_IMAGE POLARWIN_WORLD
    CLASS_STAR VIGNET VIGNET_SHIFT VIGNET_DGEOX VIGNET_DGEOY VECTOR_ASSOC NUMBER_ASSOC THRESHOLDMAX
    FLUX_GROWTH FLUX_GROWTHSTEP MAG_GROWTH MAG_GROWTHSTEP FLUX_RADIUS FWHMPSF_IMAGE FWHMPSF_WORLD XPSF_IMAGE
    YPSF_IMAGE XPSF_WORLD YPSF_WORLD ALPHAPSF_SKY DELTAPSF_SKY ALPHAPSF_J2000 DELTAPSF_J2000 ALPHAPSF_B1950
    DELTAPSF_B1950 FLUX_PSF FLUXERR_PSF MAG_PSF MAGERR_PSF NITER_PSF CHI2_PSF ERRX2PSF_IMAGE ERRY2PSF_IMAGE
    ERRXYPSF_IMAGE ERRX2PSF_WORLD ERRY2PSF_WORLD ERRXYPSF_WORLD ERRCXXPSF_IMAGE ERRCYYPSF_IMAGE
    ERRCXYPSF_IMAGE ERRCXXPSF_WORLD ERRCYYPSF_WORLD ERRCXYPSF_WORLD ERRAPSF_IMAGE ERRBPSF_IMAGE
    ERRTHETAPSF_IMAGE ERRAPSF_WORLD ERRBPSF_WORLD ERRTHETAPSF_WORLD ERRTHETAPSF_SKY ERRTHETAPSF_J2000
    ERRTHETAPSF_B1950 DURATION_ANALYSIS VECTOR_MODEL VECTOR_MODELERR MATRIX_MODELERR CHI2_MODEL FLAGS_MODEL
    NITER_MODEL FLUX_MODEL FLUXERR_MODEL MAG_MODEL MAGERR_MODEL FLUX_HYBRID FLUXERR_HYBRID MAG_HYBRID
    MAGERR_HYBRID FLUX_MAX_MODEL FLUX_EFF_MODEL FLUX_MEAN_MODEL MU_MAX_MODEL MU_EFF_MODEL MU_MEAN_MODEL
    XMODEL_IMAGE YMODEL_IMAGE XFOCAL_WORLD YFOCAL_WORLD XMODEL_WORLD YMODEL_WORLD ALPHAMODEL_SKY
    DELTAMODEL_SKY ALPHAMODEL_J2000 DELTAMODEL_J2000 ALPHAMODEL_B1950 DELTAMODEL_B1950 ERRX2MODEL_IMAGE
    ERRY2MODEL_IMAGE ERRXYMODEL_IMAGE ERRX2MODEL_WORLD ERRY2MODEL_WORLD ERRXYMODEL_WORLD ERRCXXMODEL_IMAGE
    ERRCYYMODEL_IMAGE ERRCXYMODEL_IMAGE ERRCXXMODEL_WORLD ERRCYYMODEL_WORLD ERRCXYMODEL_WORLD ERRAMODEL_IMAGE
    ERRBMODEL_IMAGE ERRTHETAMODEL_IMAGE ERRAMODEL_WORLD ERRBMODEL_WORLD ERRTHETAMODEL_WORLD ERRTHETAMODEL_SKY
    ERRTHETAMODEL_J2000 ERRTHETAMODEL_B1950 X2MODEL_IMAGE Y2MODEL_IMAGE XYMODEL_IMAGE ELLIP1MODEL_IMAGE
    ELLIP2MODEL_IMAGE POLAR1MODEL_IMAGE POLAR2MODEL_IMAGE ELLIP1ERRMODEL_IMAGE ELLIP2ERRMODEL_IMAGE
    ELLIPCORRMODEL_IMAGE POLAR1ERRMODEL_IMAGE POLAR2ERRMODEL_IMAGE POLARCORRMODEL_IMAGE X2MODEL_WORLD
    Y2MODEL_WORLD XYMODEL_WORLD ELLIP1MODEL_WORLD ELLIP2MODEL_WORLD POLAR1MODEL_WORLD POLAR2MODEL_WORLD
    ELLIP1ERRMODEL_WORLD ELLIP2ERRMODEL_WORLD ELLIPCORRMODEL_WORLD POLAR1ERRMODEL_WORLD POLAR2ERRMODEL_WORLD
    POLARCORRMODEL_WORLD CXXMODEL_IMAGE CYYMODEL_IMAGE CXYMODEL_IMAGE CXXMODEL_WORLD CYYMODEL_WORLD
    CXYMODEL_WORLD AMODEL_IMAGE BMODEL_IMAGE THETAMODEL_IMAGE AMODEL_WORLD BMODEL_WORLD THETAMODEL_WORLD
    THETAMODEL_SKY THETAMODEL_J2000 THETAMODEL_B1950 SPREAD_MODEL SPREADERR_MODEL NOISEAREA_MODEL
    FLUX_BACKOFFSET FLUXERR_BACKOFFSET FLUX_POINTSOURCE FLUXERR_POINTSOURCE FLUXRATIO_POINTSOURCE
    FLUXRATIOERR_POINTSOURCE MAG_POINTSOURCE MAGERR_POINTSOURCE FLUX_SPHEROID FLUXERR_SPHEROID MAG_SPHEROID
    MAGERR_SPHEROID FLUX_MAX_SPHEROID FLUX_EFF_SPHEROID FLUX_MEAN_SPHEROID MU_MAX_SPHEROID MU_EFF_SPHEROID
    MU_MEAN_SPHEROID FLUXRATIO_SPHEROID FLUXRATIOERR_SPHEROID SPHEROID_REFF_IMAGE SPHEROID_REFFERR_IMAGE
    SPHEROID_REFF_WORLD SPHEROID_REFFERR_WORLD SPHEROID_ASPECT_IMAGE SPHEROID_ASPECTERR_IMAGE
    SPHEROID_ASPECT_WORLD SPHEROID_ASPECTERR_WORLD SPHEROID_THETA_IMAGE SPHEROID_THETAERR_IMAGE
    SPHEROID_THETA_WORLD SPHEROID_THETAERR_WORLD SPHEROID_THETA_SKY SPHEROID_THETA_J2000 SPHEROID_THETA_B1950
    SPHEROID_SERSICN SPHEROID_SERSICNERR FLUX_DISK FLUXERR_DISK MAG_DISK MAGERR_DISK FLUX_MAX_DISK
    FLUX_EFF_DISK FLUX_MEAN_DISK MU_MAX_DISK MU_EFF_DISK MU_MEAN_DISK FLUXRATIO_DISK FLUXRATIOERR_DISK
    DISK_SCALE_IMAGE DISK_SCALEERR_IMAGE DISK_SCALE_WORLD DISK_SCALEERR_WORLD DISK_ASPECT_IMAGE
    DISK_ASPECTERR_IMAGE DISK_ASPECT_WORLD DISK_ASPECTERR_WORLD DISK_INCLINATION DISK_INCLINATIONERR
    DISK_THETA_IMAGE DISK_THETAERR_IMAGE DISK_THETA_WORLD DISK_THETAERR_WORLD DISK_THETA_SKY DISK_THETA_J2000
    DISK_THETA_B1950 CHI2_DETMODEL FLAGS_DETMODEL NITER_DETMODEL FLUX_DETMODEL FLUXERR_DETMODEL MAG_DETMODEL
    MAGERR_DETMODEL
""".split())
