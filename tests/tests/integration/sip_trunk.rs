//! The carrier trunk with sipp as the carrier: ringing, CANCEL, timeout, decline, refusals.

use std::time::Duration;

use gateway::db::{ConsultationState, MissedReason};
use schemas::ws::{ClientMessage, RingStopReason, ServerMessage};
use sqlx::Row;

use crate::harness::{ring_during, Gateway, GatewayOptions, Sipp};

const WAIT: Duration = Duration::from_secs(10);

async fn count(gw: &Gateway, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(gw.db().pool())
        .await
        .expect("count")
        .get::<i64, _>("n")
}

async fn latest_consultation(gw: &Gateway) -> gateway::db::Consultation {
    let id: String =
        sqlx::query("SELECT id FROM consultations ORDER BY created_at_ms DESC, id LIMIT 1")
            .fetch_one(gw.db().pool())
            .await
            .expect("a consultation")
            .get("id");
    gw.db()
        .consultation(&id)
        .await
        .expect("read")
        .expect("exists")
}

/// The consultation is missed with `reason`, closed, and its call record agrees.
async fn assert_missed(gw: &Gateway, consultation_id: &str, reason: MissedReason) {
    // The actor answers the carrier before it writes: allow it a moment.
    let mut c = None;
    for _ in 0..50 {
        let row = gw
            .db()
            .consultation(consultation_id)
            .await
            .expect("read")
            .expect("exists");
        if row.state == ConsultationState::Missed {
            c = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = c.unwrap_or_else(|| panic!("consultation {consultation_id} never became missed"));
    assert_eq!(c.missed_reason, Some(reason));
    assert!(
        c.closed_at_ms.is_some(),
        "missed calls close their consultation"
    );
    assert_eq!(c.source, gateway::db::Source::Phone);
    assert_eq!(c.classification, gateway::db::Classification::Call);
    let calls = gw
        .db()
        .calls_for_consultation(consultation_id)
        .await
        .expect("calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].missed_reason, Some(reason));
    assert_eq!(calls[0].charge_minor, 0);
    assert!(calls[0].ended_at_ms.is_some());
}

async fn cancel_while_ringing(tcp: bool) {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager");
    let sipp = tokio::spawn({
        let target = if tcp {
            gw.server.sip_tcp.expect("tcp")
        } else {
            gw.sip
        };
        async move {
            let mut s = Sipp::new("uac_cancel.xml");
            s.tcp = tcp;
            s.pause_ms = 500;
            s.run(target).await
        }
    });
    let ring = m1.ring(WAIT).await.expect("ring");
    let ServerMessage::Ring {
        consultation_id,
        caller,
        dialled,
        customer_id,
        ..
    } = ring
    else {
        unreachable!()
    };
    assert_eq!(caller.as_deref(), Some("+821098765432"));
    assert_eq!(dialled, "+827012345678");
    sipp.await.expect("join").expect("sipp scenario");
    match m1.next(WAIT).await.expect("ring stopped") {
        ServerMessage::RingStopped {
            consultation_id: c,
            reason,
        } => {
            assert_eq!(c, consultation_id);
            assert_eq!(
                reason,
                RingStopReason::Missed(schemas::missed::MissedReason::CallerCancelled)
            );
        }
        other => panic!("expected ring_stopped, got {other:?}"),
    }
    assert_missed(&gw, &consultation_id, MissedReason::CallerCancelled).await;
    let c = gw
        .db()
        .consultation(&consultation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.customer_id, customer_id);
    assert_eq!(c.assignee_manager_id.as_deref(), Some("manager-1"));
    // The same caller again is the same customer, in a NEW consultation.
    let again = gw
        .db()
        .customer_by_phone("demo", "+821098765432")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, customer_id);
    // The manager is free again for the next call.
    let m = gw.db().manager("manager-1").await.unwrap().unwrap();
    assert_eq!(m.ringing_consultation_id, None);
}

#[tokio::test]
async fn caller_cancel_while_ringing_udp() {
    cancel_while_ringing(false).await;
}

#[tokio::test]
async fn caller_cancel_while_ringing_tcp() {
    cancel_while_ringing(true).await;
}

#[tokio::test]
async fn ring_timeout_is_no_answer_480() {
    let gw = Gateway::start(GatewayOptions {
        ring_timeout_ms: 1_500,
        ..Default::default()
    })
    .await
    .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("manager");
    let target = gw.sip;
    let mut sipp = tokio::spawn(async move { Sipp::new("uac_ring_timeout.xml").run(target).await });
    let ServerMessage::Ring {
        consultation_id,
        ring_expires_at_ms,
        ..
    } = ring_during(&mut m1, &mut sipp, WAIT).await.expect("ring")
    else {
        unreachable!()
    };
    assert!(ring_expires_at_ms > 0);
    sipp.await
        .expect("join")
        .expect("sipp: 480 after the ring timeout");
    assert_missed(&gw, &consultation_id, MissedReason::NoAnswer).await;
}

#[tokio::test]
async fn decline_rings_the_next_manager_then_603() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    let mut m2 = gw.manager("demo-manager-2").await.expect("m2");
    let target = gw.sip;
    let sipp = tokio::spawn(async move { Sipp::new("uac_declined.xml").run(target).await });
    // Both are equally fresh: the tie goes by id, so manager-1 rings first.
    let ServerMessage::Ring {
        consultation_id, ..
    } = m1.ring(WAIT).await.expect("m1 ring")
    else {
        unreachable!()
    };
    m1.send(&ClientMessage::Decline {
        consultation_id: consultation_id.clone(),
    })
    .await
    .unwrap();
    match m1.next(WAIT).await.unwrap() {
        ServerMessage::RingStopped { reason, .. } => {
            assert_eq!(reason, RingStopReason::DeclinedByYou)
        }
        other => panic!("{other:?}"),
    }
    let ServerMessage::Ring {
        consultation_id: c2,
        ..
    } = m2.ring(WAIT).await.expect("m2 ring")
    else {
        unreachable!()
    };
    assert_eq!(c2, consultation_id);
    m2.send(&ClientMessage::Decline {
        consultation_id: c2,
    })
    .await
    .unwrap();
    sipp.await
        .expect("join")
        .expect("sipp: 603 after both declined");
    assert_missed(&gw, &consultation_id, MissedReason::Declined).await;
}

#[tokio::test]
async fn fair_assignment_takes_the_least_recently_assigned() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    let mut m2 = gw.manager("demo-manager-2").await.expect("m2");
    let mut rung = Vec::new();
    for _ in 0..4 {
        let target = gw.sip;
        let sipp = tokio::spawn(async move {
            let mut s = Sipp::new("uac_cancel.xml");
            s.pause_ms = 200;
            s.run(target).await
        });
        // Exactly one of the two rings per call.
        let who = tokio::select! {
            r = m1.ring(WAIT) => { r.expect("ring"); "manager-1" }
            r = m2.ring(WAIT) => { r.expect("ring"); "manager-2" }
        };
        rung.push(who);
        sipp.await.unwrap().expect("sipp");
    }
    assert_eq!(rung, ["manager-1", "manager-2", "manager-1", "manager-2"]);
}

#[tokio::test]
async fn nobody_online_is_no_available_manager() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    Sipp::new("uac_no_manager.xml")
        .run(gw.sip)
        .await
        .expect("sipp: 480");
    let c = latest_consultation(&gw).await;
    assert_missed(&gw, &c.id, MissedReason::NoAvailableManager).await;
}

#[tokio::test]
async fn do_not_disturb_and_offline_managers_are_not_rung() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let mut m1 = gw.manager("demo-manager-1").await.expect("m1");
    m1.send(&ClientMessage::SetDoNotDisturb { enabled: true })
        .await
        .unwrap();
    assert!(matches!(
        m1.next(WAIT).await.unwrap(),
        ServerMessage::Presence {
            do_not_disturb: true,
            ..
        }
    ));
    let m2 = gw.manager("demo-manager-2").await.expect("m2");
    m2.close().await;
    // manager-2's presence goes offline when its only session closes.
    for _ in 0..50 {
        if gw
            .db()
            .manager("manager-2")
            .await
            .unwrap()
            .unwrap()
            .presence
            == gateway::db::Presence::Offline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Sipp::new("uac_no_manager.xml")
        .run(gw.sip)
        .await
        .expect("sipp: 480");
    let c = latest_consultation(&gw).await;
    assert_missed(&gw, &c.id, MissedReason::NoAvailableManager).await;
}

#[tokio::test]
async fn disallowed_address_gets_403_and_nothing_is_written() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let _m1 = gw.manager("demo-manager-1").await.expect("m1");
    let mut s = Sipp::new("uac_forbidden.xml");
    // The trunk allows 127.0.0.1/32 only; 127.0.0.2 is another loopback address.
    s.local_ip = "127.0.0.2";
    s.run(gw.sip).await.expect("sipp: 403");
    assert_eq!(count(&gw, "consultations").await, 0);
    assert_eq!(count(&gw, "customers").await, 0);
    assert_eq!(count(&gw, "calls").await, 0);
}

#[tokio::test]
async fn unknown_number_gets_404() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let _m1 = gw.manager("demo-manager-1").await.expect("m1");
    let mut s = Sipp::new("uac_unknown_number.xml");
    s.service = "07099990000".to_string();
    s.run(gw.sip).await.expect("sipp: 404");
    assert_eq!(count(&gw, "consultations").await, 0);
}

#[tokio::test]
async fn channel_without_paid_plan_or_verification_gets_403() {
    for edit in [
        |s: String| s.replace("plan = \"paid\"", "plan = \"free\""),
        |s: String| s.replace("business_verified = true", "business_verified = false"),
    ] {
        let gw = Gateway::start(GatewayOptions {
            edit: Box::new(edit),
            ..Default::default()
        })
        .await
        .expect("gateway");
        let _m1 = gw.manager("demo-manager-1").await.expect("m1");
        Sipp::new("uac_channel_refused.xml")
            .run(gw.sip)
            .await
            .expect("sipp: 403");
        assert_eq!(count(&gw, "consultations").await, 0);
    }
}

#[tokio::test]
async fn no_common_codec_gets_488() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let _m1 = gw.manager("demo-manager-1").await.expect("m1");
    Sipp::new("uac_no_common_codec.xml")
        .run(gw.sip)
        .await
        .expect("sipp: 488");
    assert_eq!(count(&gw, "consultations").await, 0);
}

#[tokio::test]
async fn options_gets_200_with_allow_over_udp_and_tcp() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    Sipp::new("uac_options.xml")
        .run(gw.sip)
        .await
        .expect("sipp udp");
    let mut s = Sipp::new("uac_options.xml");
    s.tcp = true;
    s.run(gw.server.sip_tcp.expect("tcp"))
        .await
        .expect("sipp tcp");
}
