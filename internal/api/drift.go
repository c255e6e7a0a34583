package api

import (
	"net/http"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/schedule"
)

func (a *API) driftRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/drift", auth.SpaceRead, a.listDrift)
	r.Handle("GET /api/v1/stacks/{id}/drift", auth.SpaceRead, a.showDrift)
	r.Handle("POST /api/v1/stacks/{id}/drift/reconcile", auth.RunTrigger, a.reconcileDrift)
	r.Handle("GET /api/v1/stacks/{id}/drift-detection", auth.SpaceRead, a.getDriftDetection)
	r.Handle("PUT /api/v1/stacks/{id}/drift-detection", auth.StackUpdate, a.setDriftDetection)
	r.Handle("DELETE /api/v1/stacks/{id}/drift-detection", auth.StackUpdate, a.deleteDriftDetection)
	r.Handle("GET /api/v1/stacks/{id}/schedules", auth.SpaceRead, a.listSchedules)
	r.Handle("POST /api/v1/stacks/{id}/schedules", auth.StackUpdate, a.createSchedule)
	r.Handle("DELETE /api/v1/stacks/{id}/schedules/{schedule}", auth.StackUpdate, a.deleteSchedule)
}

func (a *API) driftSvc() (*drift.Service, *schedule.Service, error) {
	if a.Drift == nil || a.Schedules == nil {
		return nil, nil, errs.E(errs.Unavailable, "drift detection is not enabled on this server")
	}
	return a.Drift, a.Schedules, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func scheduleOut(sc schedule.Schedule) apiv1.Schedule {
	return apiv1.Schedule{ID: sc.ID, Stack: sc.StackID, Kind: sc.Kind, Cron: sc.Crons, Timezone: sc.Timezone, At: timePtr(sc.At),
		Command: sc.Command, Reconcile: sc.Reconcile, IgnoreState: sc.IgnoreState, DeleteResources: sc.DeleteResources,
		NextRunAt: timePtr(sc.NextRunAt), LastDue: timePtr(sc.LastDue), LastRun: sc.LastRunID, LastNote: sc.LastNote,
		Status: sc.Status, CreatedBy: sc.CreatedBy, CreatedAt: utc(sc.CreatedAt)}
}

func driftDetectionOut(sc schedule.Schedule) apiv1.DriftDetection {
	return apiv1.DriftDetection{ID: sc.ID, Schedule: sc.Crons, Timezone: sc.Timezone, Reconcile: sc.Reconcile, IgnoreState: sc.IgnoreState,
		NextRunAt: timePtr(sc.NextRunAt), LastDue: timePtr(sc.LastDue), LastRun: sc.LastRunID, LastNote: sc.LastNote}
}

func (a *API) getDriftDetection(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	sc, err := sch.Drift(r.Context(), st.ID)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, driftDetectionOut(sc))
	return nil
}

func (a *API) setDriftDetection(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	var in apiv1.DriftDetectionSet
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	// Drift detection queues runs (proposed ones, and with reconcile
	// tracked ones that apply): what queuing them by hand takes.
	if err := auth.Authorize(p, auth.RunTrigger, st.Space); err != nil {
		return err
	}
	sc, err := sch.SetDrift(r.Context(), st.ID, p.String(), schedule.DriftSettings{Crons: in.Schedule, Timezone: in.Timezone,
		Reconcile: in.Reconcile, IgnoreState: in.IgnoreState})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, driftDetectionOut(sc))
	return nil
}

func (a *API) deleteDriftDetection(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	if err := sch.DeleteDrift(r.Context(), st.ID); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listSchedules(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	list, err := sch.List(r.Context(), st.ID)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Schedule]{Items: []apiv1.Schedule{}}
	for _, sc := range list {
		out.Items = append(out.Items, scheduleOut(sc))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	var in apiv1.ScheduleCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	// A schedule acts later on the caller's behalf: it needs what acting
	// now would.
	also := map[string]string{schedule.KindRun: auth.RunTrigger, schedule.KindTask: auth.TaskCreate, schedule.KindDelete: auth.StackDelete}[in.Kind]
	if also != "" {
		if err := auth.Authorize(p, also, st.Space); err != nil {
			return err
		}
	}
	ns := schedule.NewSchedule{Kind: in.Kind, Crons: in.Cron, Timezone: in.Timezone, Command: in.Command, DeleteResources: true}
	if in.At != nil {
		ns.At = *in.At
	}
	if in.DeleteResources != nil {
		ns.DeleteResources = *in.DeleteResources
	}
	sc, err := sch.Add(r.Context(), st.ID, p.String(), ns)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, scheduleOut(sc))
	return nil
}

func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, sch, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.StackUpdate)
	if err != nil {
		return err
	}
	if err := sch.Remove(r.Context(), st.ID, r.PathValue("schedule")); err != nil {
		return err
	}
	return noContent(w)
}

func stackDriftOut(s drift.Status) apiv1.StackDrift {
	return apiv1.StackDrift{Stack: s.StackID, Name: s.StackName, Space: s.SpaceID, Status: s.Status, Drifted: s.Drifted,
		Since: timePtr(s.Since), LastCheckedAt: timePtr(s.LastCheckedAt), LastRun: s.LastRunID, LastGoodAt: timePtr(s.LastGoodAt),
		LastGoodRun: s.LastGoodRunID, Error: s.Error, PendingChanges: s.PendingChanges,
		Clouds: s.Clouds, Scheduled: s.Scheduled}
}

func driftResourceOut(d drift.Record) apiv1.DriftResource {
	out := apiv1.DriftResource{Address: d.Address, Type: d.Type, Provider: d.Provider, Cloud: d.Cloud, Action: d.Action,
		Attributes: []apiv1.DriftAttribute{}, FirstRun: d.FirstRunID, FirstDetectedAt: utc(d.FirstDetectedAt), LastRun: d.LastRunID,
		LastDetectedAt: utc(d.LastDetectedAt), ResolvedRun: d.ResolvedRunID, ResolvedAt: timePtr(d.ResolvedAt)}
	for _, at := range d.Attributes {
		out.Attributes = append(out.Attributes, apiv1.DriftAttribute{Name: at.Name, Before: at.Before, After: at.After, Sensitive: at.Sensitive})
	}
	return out
}

func (a *API) listDrift(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	dr, _, err := a.driftSvc()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]drift.Status, string, error) {
		return dr.List(r.Context(), drift.Filter{Stack: q.Get("stack"), Space: q.Get("space"), Cloud: q.Get("cloud"), Status: q.Get("status"), Cursor: cursor, Limit: limit})
	}, func(s drift.Status) bool { return readable(p, s.SpaceID) }, func(s drift.Status) string { return s.StackID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.StackDrift]{Items: []apiv1.StackDrift{}, NextCursor: nextCursor(r, next)}
	for _, s := range list {
		out.Items = append(out.Items, stackDriftOut(s))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) showDrift(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	dr, _, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	d, err := dr.Show(r.Context(), st.ID)
	if err != nil {
		return err
	}
	out := apiv1.StackDriftDetail{StackDrift: stackDriftOut(d.Status), Resources: []apiv1.DriftResource{}, History: []apiv1.DriftResource{}}
	for _, x := range d.Open {
		out.Resources = append(out.Resources, driftResourceOut(x))
	}
	for _, x := range d.Resolved {
		out.History = append(out.History, driftResourceOut(x))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) reconcileDrift(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	dr, _, err := a.driftSvc()
	if err != nil {
		return err
	}
	st, err := a.stack(r, p, auth.RunTrigger)
	if err != nil {
		return err
	}
	var in apiv1.DriftReconcile
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	rn, err := dr.Reconcile(r.Context(), st.ID, p.String(), creator(p, r), in.Resources)
	if err != nil {
		return err
	}
	return a.writeRun(w, r, http.StatusCreated, rn)
}
