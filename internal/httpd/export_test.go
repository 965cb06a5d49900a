package httpd

// RoutePatterns returns the ServeMux pattern of every route of the public
// listener (API and pages) and of the admin listener (API and pages), for
// the tests of the unauthenticated surface.
func RoutePatterns() (pub, adm []string) {
	p := &public{}
	for _, rt := range append(append(p.publicRoutes(), p.browserRoutes()...), p.guestRoutes()...) {
		pub = append(pub, rt.pattern)
	}
	a := &adminPlane{metrics: NewMetrics(func() float64 { return 0 })}
	for _, rt := range append(a.adminRoutes(), a.adminWebRoutes()...) {
		adm = append(adm, rt.pattern)
	}
	return pub, adm
}
